import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LanpartyError } from '../../../src/util/errors.js';
import { UDP_HEADER_BYTES, emitUdp, parseUdp } from '../../../src/wire/udp.js';
import { DHCLIENT_DISCOVER_HEX, UDHCPC_DISCOVER_HEX } from '../../../lab/golden.js';

const wireErr = (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_WIRE';

test('verifies the pseudo-header checksum of real DISCOVERs and re-emits them byte for byte', () => {
  for (const hex of [UDHCPC_DISCOVER_HEX, DHCLIENT_DISCOVER_HEX]) {
    const f = Buffer.from(hex, 'hex');
    const u = parseUdp(f, 34, f.length - 34, 0, 0xffffffff);
    assert.deepEqual(u, { srcPort: 68, dstPort: 67, payloadBytes: 300 });
    const copy = Buffer.from(f);
    copy.writeUInt16BE(0x1234, 34 + 6);
    emitUdp(u, copy, 34, 0, 0xffffffff);
    assert.deepEqual(copy, f);
  }
});

test('length boundaries, zero checksum and mismatches', () => {
  const b = Buffer.alloc(12);
  b.write('abcd', 8);
  emitUdp({ srcPort: 1, dstPort: 2, payloadBytes: 4 }, b, 0, 0x01020304, 0x05060708);
  assert.equal(parseUdp(b, 0, 12, 0x01020304, 0x05060708).payloadBytes, 4);
  assert.throws(() => parseUdp(b, 0, 11, 0x01020304, 0x05060708), wireErr);   // length field 12 > 11
  assert.throws(() => parseUdp(b, 0, UDP_HEADER_BYTES - 1, 0, 0), wireErr);
  assert.throws(() => parseUdp(b, 0, 12, 0x01020305, 0x05060708), /checksum/);
  const none = Buffer.from(b); none.writeUInt16BE(0, 6);
  assert.equal(parseUdp(none, 0, 12, 9, 9).payloadBytes, 4);
  const short = Buffer.from(b); short.writeUInt16BE(7, 4);
  assert.throws(() => parseUdp(short, 0, 12, 0, 0), /length field 7/);
});
