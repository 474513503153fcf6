/**
 * tap:// locators (src/config/locator.ts): attach by name, create with address and MTU, and the
 * errors for each bad field. Pure parsing: no device is touched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLocator } from '../../../src/config/locator.js';
import { LanpartyError } from '../../../src/util/errors.js';

test('tap://NAME attaches to an existing device', () => {
  assert.deepEqual(parseLocator('tap://tap0', 'f'), { scheme: 'tap', url: 'tap://tap0', name: 'tap0', create: false, address: null, prefixLength: 0, mtuBytes: null });
});

test('create=1 with address and mtu', () => {
  assert.deepEqual(parseLocator('tap://lp0?create=1&address=10.77.0.254/24&mtu=1500', 'f'), {
    scheme: 'tap', url: 'tap://lp0?create=1&address=10.77.0.254/24&mtu=1500', name: 'lp0', create: true, address: '10.77.0.254', prefixLength: 24, mtuBytes: 1500,
  });
  assert.equal((parseLocator('tap://lp0?create=1', 'f') as { create: boolean }).create, true);
});

test('bad tap locators name the field and the fix', () => {
  const bad: Array<[string, RegExp]> = [
    ['tap://', /not a valid interface name/],
    ['tap://abcdefghijklmnop', /not a valid interface name/],
    ['tap://a/b', /not a valid interface name/],
    ['tap://tap0?create=yes', /create=yes must be 0 or 1/],
    ['tap://tap0?create=1&address=10.77.0.254', /prefix length/],
    ['tap://tap0?create=1&address=300.1.1.1/24', /IPv4 address/],
    ['tap://tap0?create=1&mtu=67', /mtu 67 is out of range/],
    ['tap://tap0?mtu=1500', /need create=1/],
    ['tap://tap0?address=10.0.0.1/24', /need create=1/],
    ['tap://tap0?peer=x', /unknown parameter "peer" for tap \(expected create, address, mtu\)/],
  ];
  for (const [url, re] of bad) {
    assert.throws(() => parseLocator(url, 'port[0].url'), (e: unknown) =>
      e instanceof LanpartyError && e.code === 'LP_ERR_CONFIG' && e.message.startsWith('port[0].url: ') && re.test(e.message), url);
  }
});
