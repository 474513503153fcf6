import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LanpartyError } from '../../../src/util/errors.js';
import { ICMP_HEADER_BYTES, emitIcmpEcho, icmpEchoBufferLen, parseIcmp } from '../../../src/wire/icmp.js';

const wireErr = (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_WIRE';
// Echo request id 0x1c46 seq 1 with 8 bytes of data; checksum computed by hand per RFC 1071.
const ECHO_HEX = '08004a231c4600016162636465666768';

test('parses and re-emits an echo request', () => {
  const b = Buffer.from(ECHO_HEX, 'hex');
  const e = parseIcmp(b, 0, b.length);
  assert.equal(e.type, 8);
  assert.equal(e.ident, 0x1c46);
  assert.equal(e.seq, 1);
  assert.equal(e.data.toString(), 'abcdefgh');
  const out = Buffer.alloc(icmpEchoBufferLen(e));
  emitIcmpEcho(e, out, 0);
  assert.deepEqual(out, b);
});

test('boundaries and checksum', () => {
  const b = Buffer.from(ECHO_HEX, 'hex');
  assert.throws(() => parseIcmp(b, 0, ICMP_HEADER_BYTES - 1), wireErr);
  assert.throws(() => parseIcmp(b, 0, b.length - 1), /checksum/);
  const e = { type: 0, code: 0, ident: 1, seq: 2, data: Buffer.alloc(0) };
  const h = Buffer.alloc(ICMP_HEADER_BYTES);
  emitIcmpEcho(e, h, 0);
  assert.equal(parseIcmp(h, 0, 8).seq, 2);
});
