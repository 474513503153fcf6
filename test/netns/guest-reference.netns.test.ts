/*
 * Reference: two guests on QEMU's own multicast group, no lanparty. If this fails, the harness
 * (guest image, QEMU, namespace) is broken, not lanparty.
 *
 *   netns lp<pid>-N-ref (lo up, nothing else)
 *   ┌────────────────────────────────────────────────────────────┐
 *   │  guest a 10.0.0.2/24          guest b 10.0.0.3/24          │
 *   │  -netdev socket,mcast=230.0.0.1:33000,localaddr=127.0.0.1  │
 *   │        └───────── 230.0.0.1:33000 on lo ─────────┘         │
 *   └────────────────────────────────────────────────────────────┘
 *   a pings b, b pings a; both must print LP-DONE ok. Negative case: a third guest pings an
 *   address nobody has and must report that ping as failed (LP-DONE fail).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll, netnsSkipReason, Netns } from '../../lab/netns.js';
import { buildGuest, guestSkipReason, macForGuest, startGuest, summarize, summaryLines } from '../../lab/guest.js';

const skip = netnsSkipReason() ?? guestSkipReason();
const MCAST = 'socket,id=n0,mcast=230.0.0.1:33000,localaddr=127.0.0.1';

after(cleanupAll);
before(async () => {
  if (!skip) await buildGuest();
});

test('two guests on the plain QEMU multicast group ping each other', { skip, timeout: 180_000 }, async (t) => {
  const ns = await Netns.create('ref');
  const [a, b] = await Promise.all([
    startGuest({ ns, name: 'a', mac: macForGuest(2), netdevArgs: [MCAST], cmdline: { ip: '10.0.0.2/24', ping: ['10.0.0.3'], wait: 60 } }),
    startGuest({ ns, name: 'b', mac: macForGuest(3), netdevArgs: [MCAST], cmdline: { ip: '10.0.0.3/24', ping: ['10.0.0.2'], wait: 60 } }),
  ]);
  const [ra, rb] = await Promise.all([a.result(), b.result()]);
  for (const line of [...summaryLines('a', ra), ...summaryLines('b', rb)]) t.diagnostic(line);
  assert.equal(ra.done, 'ok', summarize('a', ra));
  assert.equal(rb.done, 'ok', summarize('b', rb));
  const pa = ra.results.find((r) => r.kind === 'ping' && r.target === '10.0.0.3');
  const pb = rb.results.find((r) => r.kind === 'ping' && r.target === '10.0.0.2');
  assert.ok(pa?.ok, 'a has a successful ping result for 10.0.0.3');
  assert.ok(pb?.ok, 'b has a successful ping result for 10.0.0.2');
  assert.equal(pa.fields.received, '3/3');
  assert.equal(pb.fields.received, '3/3');
  t.diagnostic(`boot to init: a ${ra.bootMs} ms, b ${rb.bootMs} ms`);
  a.kill();
  b.kill();
  await Promise.all([a.exited(), b.exited()]);
  await ns.destroy();
});

test('a ping to an address nobody has fails (the harness can report failure)', { skip, timeout: 120_000 }, async () => {
  const ns = await Netns.create('refneg');
  const g = await startGuest({ ns, name: 'lonely', mac: macForGuest(4), netdevArgs: [MCAST], cmdline: { ip: '10.0.0.4/24', ping: ['10.0.0.99'], deadline: 5 } });
  const r = await g.result();
  assert.equal(r.done, 'fail', summarize('lonely', r));
  assert.equal(r.reason, 'ping-10.0.0.99');
  const p = r.results.find((x) => x.kind === 'ping');
  assert.equal(p?.ok, false);
  await g.exited();
  await ns.destroy();
});
