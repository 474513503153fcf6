/** exposureLines: what `lanparty up` says its ports expose, from the transports' status rows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exposureLines } from '../../../src/cli/up.js';

const row = (url: string, kind: string, address: string, state = 'listening') => ({ url, kind, state, address });

test('the defaults: loopback ports are open to every user of this host, nothing to other hosts', () => {
  assert.deepEqual(exposureLines(null, [
    row('mcast://230.0.0.1:33000', 'mcast', '230.0.0.1:33000 on 127.0.0.1 ttl 1', 'joined'),
    row('udp://127.0.0.1:33001', 'udp', '127.0.0.1:33001'),
    row('unixgram:///run/l/dgram.sock', 'unixgram', '/run/l/dgram.sock'),
    row('tcp://127.0.0.1:33002', 'tcp', '127.0.0.1:33002'),
    row('unix:///run/l/stream.sock', 'unix', '/run/l/stream.sock'),
  ]), [
    'Every user of this host can reach the multicast, udp, tcp ports (read the LAN\'s frames, take a guest\'s MAC); on a shared host use lanparty up --private.',
    'Nothing above is reachable from other hosts.',
  ]);
});

test('a port bound beyond loopback gets a line naming it and who reaches it', () => {
  const lines = exposureLines(null, [
    row('tcp://0.0.0.0:33002', 'tcp', '0.0.0.0:33002'),
    row('wg://0.0.0.0:51820', 'wg', '0.0.0.0:51820'),
    row('vxlan://10.0.0.1?vni=42&remote=10.0.0.2', 'vxlan', '10.0.0.1:4789 vni 42 → 10.0.0.2:4789'),
    row('mcast://239.1.2.3:5555?localaddr=192.168.1.5', 'mcast', '239.1.2.3:5555 on 192.168.1.5 ttl 1', 'joined'),
    row('unix:///run/l/stream.sock', 'unix', '/run/l/stream.sock'),
    row('tap://tap0', 'tap', 'tap0 10.77.0.254/24', 'up'),
  ]);
  assert.equal(lines[0], 'Reachable from other hosts:');
  assert.equal(lines.length, 5, lines.join('\n'));
  assert.match(lines[1], /^ {2}tcp:\/\/0\.0\.0\.0:33002: any host that can connect joins the LAN/);
  assert.match(lines[2], /^ {2}wg:\/\/0\.0\.0\.0:51820: encrypted; only the peers whose keys are configured get in$/);
  assert.match(lines[3], /^ {2}vxlan:\/\/10\.0\.0\.1.*VXLAN is not encrypted/);
  assert.match(lines[4], /^ {2}mcast:\/\/239\.1\.2\.3:5555\?localaddr=192\.168\.1\.5: every host on that network segment/);
});

test('private mode names its directory and nothing else', () => {
  assert.deepEqual(exposureLines('/run/l/private', [row('unix:///run/l/private/stream.sock', 'unix', '/run/l/private/stream.sock')]),
    ['Private: only unix sockets, in /run/l/private (mode 0700); other users of this host cannot reach them.']);
});
