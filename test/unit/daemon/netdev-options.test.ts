/**
 * The doctor reads QEMU command lines in both -netdev forms: QEMU's key=value list and the JSON
 * object libvirt passes. Both give the same options and the same target.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { netdevOptions, netdevTarget } from '../../../src/daemon/doctor/qemu-endpoints.js';

test('netdevOptions: key=value and JSON forms agree, nested JSON objects flattened with dots', () => {
  const kv = netdevOptions('dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=34051,remote.type=inet,remote.host=127.0.0.1,remote.port=33001');
  const json = netdevOptions(JSON.stringify({
    type: 'dgram', id: 'n0',
    local: { type: 'inet', host: '127.0.0.1', port: '34051' },
    remote: { type: 'inet', host: '127.0.0.1', port: 33001 },
  }));
  assert.deepEqual([...json.entries()].sort(), [...kv.entries()].sort());
  assert.equal(json.get('remote.port'), '33001', 'numbers become text, as in the key=value form');
});

test('netdevTarget: the legacy socket backend in libvirt\'s JSON form points at lanparty\'s udp port', () => {
  const spec = '{"type":"socket","udp":"127.0.0.1:33001","localaddr":"127.0.0.1:34995","id":"hostnet0"}';
  assert.deepEqual(netdevTarget(spec), { kind: 'udp', host: '127.0.0.1', port: 33001 });
  assert.equal(netdevOptions(spec).get('localaddr'), '127.0.0.1:34995');
  assert.deepEqual(netdevTarget('{"type":"stream","server":false,"addr":{"type":"unix","path":"/run/lp.sock"}}'), { kind: 'unix', path: '/run/lp.sock' });
});

test('netdevOptions: a broken JSON value is no options, not a crash', () => {
  assert.equal(netdevOptions('{"type":"socket",').size, 0);
  assert.equal(netdevTarget('{"type":"socket",'), undefined);
});
