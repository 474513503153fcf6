/** udp locators' accept= and the rule that a bind beyond loopback names whom it takes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLocator, MAX_ACCEPT_ENTRIES } from '../../../src/config/locator.js';

function udp(url: string) {
  const p = parseLocator(url, 'port[0].url');
  assert.equal(p.scheme, 'udp');
  return p as Extract<typeof p, { scheme: 'udp' }>;
}

test('accept= takes addresses and networks, comma-separated or repeated, or any', () => {
  assert.deepEqual(udp('udp://0.0.0.0:33001?accept=192.168.1.0/24,127.0.0.1&accept=10.0.0.7').accept, [
    { network: 0xc0a80100, prefixLength: 24 }, { network: 0x7f000001, prefixLength: 32 }, { network: 0x0a000007, prefixLength: 32 },
  ]);
  assert.equal(udp('udp://0.0.0.0:33001?accept=any').accept, 'any');
  assert.equal(udp('udp://127.0.0.1:33001').accept, null);
  assert.equal(udp('udp://10.1.2.3:33001?peer=10.1.2.4:5000').accept, null, 'fixed peers name the sources');
});

test('accept= errors name the port, the entry and the fix', () => {
  const bad: Array<[string, RegExp]> = [
    ['udp://0.0.0.0:1?accept=any,10.0.0.1', /accept=any takes every source; drop the other accept entries or drop any/],
    ['udp://0.0.0.0:1?accept=10.0.0.1/24', /accept entry "10\.0\.0\.1\/24": host bits are set; use 10\.0\.0\.0\/24/],
    ['udp://0.0.0.0:1?accept=10.0.0', /accept entry "10\.0\.0" is not an IPv4 address/],
    ['udp://0.0.0.0:1?accept=10.0.0.0/33', /prefix length "33" is not 0\.\.32/],
    ['udp://0.0.0.0:1?accept=', /empty accept entry/],
    [`udp://0.0.0.0:1?accept=${Array.from({ length: MAX_ACCEPT_ENTRIES + 1 }, (_, i) => `10.0.${i}.1`).join(',')}`, /65 accept entries; at most 64 \(use wider networks\)/],
    ['unixgram:///tmp/x.sock?accept=10.0.0.1', /unknown parameter "accept" for unixgram/],
  ];
  for (const [url, re] of bad) {
    assert.throws(() => parseLocator(url, 'port[0].url'), (e: Error) => e.message.startsWith('port[0].url: ') && re.test(e.message), url);
  }
});

test('a bind beyond loopback with no accept= and no peer= is refused, naming what it would expose', () => {
  for (const host of ['0.0.0.0', '192.168.1.5']) {
    assert.throws(() => parseLocator(`udp://${host}:33001`, '--port #1'), (e: Error & { code?: string }) =>
      e.code === 'LP_ERR_CONFIG' && e.message.includes(`any host that can reach ${host}:33001 could read the LAN's broadcasts and join it`) &&
      e.message.includes('accept=CIDR') && e.message.includes('accept=any'));
  }
  assert.doesNotThrow(() => parseLocator('udp://127.0.0.2:33001', 'x'), 'loopback: this host only');
});
