import { test } from 'node:test';
import assert from 'node:assert/strict';
import { foldChecksum, internetChecksum, onesComplementSum } from '../../../src/wire/checksum.js';

test('RFC 1071 section 3 example: sum ddf2, checksum 220d', () => {
  const b = Buffer.from('0001f203f4f5f6f7', 'hex');
  assert.equal(foldChecksum(onesComplementSum(b, 0, b.length)), (~0xddf2) & 0xffff);
  assert.equal(internetChecksum(b, 0, b.length), 0x220d);
});

test('odd length pads the last byte with zero', () => {
  assert.equal(internetChecksum(Buffer.from('ab', 'hex'), 0, 1), (~0xab00) & 0xffff);
  assert.equal(internetChecksum(Buffer.alloc(0), 0, 0), 0xffff);
});

test('a buffer including its own checksum sums to zero', () => {
  const b = Buffer.from('4500003c1c4640004006000' + '0ac100a63ac100a0c', 'hex');
  b.writeUInt16BE(internetChecksum(b, 0, 20), 10);
  assert.equal(b.readUInt16BE(10), 0xb1e6);   // the classic Wikipedia IPv4 header example
  assert.equal(internetChecksum(b, 0, 20), 0);
});
