import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LanpartyError } from '../../../src/util/errors.js';
import { ARP_PACKET_BYTES, emitArp, parseArp } from '../../../src/wire/arp.js';

const wireErr = (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_WIRE';
// A Linux "who-has 10.77.0.1 tell 10.77.0.10" request body (RFC 826 layout), as tcpdump -x shows it.
const REQUEST_HEX = '0001080006040001525400123456' + '0a4d000a' + '000000000000' + '0a4d0001';

test('parses a request and emits it byte for byte', () => {
  const b = Buffer.from(REQUEST_HEX, 'hex');
  const a = parseArp(b, 0, b.length);
  assert.deepEqual(a, { operation: 1, senderMac: 0x525400123456, senderIp: 0x0a4d000a, targetMac: 0, targetIp: 0x0a4d0001 });
  const out = Buffer.alloc(ARP_PACKET_BYTES);
  emitArp(a, out, 0);
  assert.deepEqual(out, b);
});

test('rejects short packets and other hardware or protocol types', () => {
  const b = Buffer.from(REQUEST_HEX, 'hex');
  assert.throws(() => parseArp(b, 0, 27), wireErr);
  const ht = Buffer.from(b); ht[1] = 6;
  assert.throws(() => parseArp(ht, 0, 28), /hardware type/);
  const pt = Buffer.from(b); pt[2] = 0x86;
  assert.throws(() => parseArp(pt, 0, 28), /protocol type/);
  const hl = Buffer.from(b); hl[4] = 8;
  assert.throws(() => parseArp(hl, 0, 28), /address lengths/);
});
