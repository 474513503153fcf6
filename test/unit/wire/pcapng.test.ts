/**
 * pcapng writer against hand-assembled golden bytes (draft-ietf-opsawg-pcapng sections 4.1-4.3):
 * little-endian, 32-bit padding of options and packet data, opt_endofopt after options.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeOptions, enhancedPacketBlock, interfaceDescriptionBlock, sectionHeaderBlock, PcapngInterfaces } from '../../../src/wire/pcapng.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('section header block without options', () => {
  assert.deepEqual(sectionHeaderBlock(), hex(`
    0a0d0d0a 1c000000
    4d3c2b1a 0100 0000 ffffffff ffffffff
    1c000000`));
});

test('section header block with shb_userappl, padded to 32 bits', () => {
  assert.deepEqual(sectionHeaderBlock({ application: 'lp' }), hex(`
    0a0d0d0a 28000000
    4d3c2b1a 0100 0000 ffffffff ffffffff
    0400 0200 6c70 0000
    0000 0000
    28000000`));
});

test('interface description block: Ethernet, if_name padded, opt_endofopt', () => {
  assert.deepEqual(interfaceDescriptionBlock({ name: 'p1' }), hex(`
    01000000 20000000
    0100 0000 00000000
    0200 0200 7031 0000
    0000 0000
    20000000`));
  // A 4-byte name needs no padding; no options at all means no opt_endofopt either.
  assert.deepEqual(interfaceDescriptionBlock({ name: 'udp1' }).subarray(16, 28), hex('0200 0400 75647031 0000 0000'));
  assert.deepEqual(interfaceDescriptionBlock(), hex('01000000 14000000 0100 0000 00000000 14000000'));
});

test('enhanced packet block: interface id, microsecond timestamp halves, lengths, padded data', () => {
  assert.deepEqual(enhancedPacketBlock(2, 1_000_000, hex('aabbcc')), hex(`
    06000000 24000000
    02000000 00000000 40420f00
    03000000 03000000
    aabbcc00
    24000000`));
  // 2023-11-14T22:13:20Z in µs needs the high word: 1.7e15 = 0x00060a24_181e4000.
  const b = enhancedPacketBlock(0, 1_700_000_000_000_000, hex('00112233'));
  assert.equal(b.readUInt32LE(12), 0x00060a24);
  assert.equal(b.readUInt32LE(16), 0x181e4000);
  assert.equal(b.length, 32 + 4);
  // A view of a bigger buffer: only off..off+len is written; the original length may be larger.
  const v = enhancedPacketBlock(0, 0, hex('ffeeddccbb'), 1, 2, 60);
  assert.deepEqual(v.subarray(20, 32), hex('02000000 3c000000 eedd0000'));
});

test('options: empty list writes nothing; each option padded', () => {
  assert.equal(encodeOptions([]).length, 0);
  assert.deepEqual(encodeOptions([{ code: 1, value: Buffer.from('abcde') }]), hex('0100 0500 6162636465 000000 0000 0000'));
});

test('interface table: ids in order of first sight, reset per section', () => {
  const t = new PcapngInterfaces();
  assert.equal(t.idOf(7), -1);
  t.add(7, { name: 'a' });
  t.add(3, { name: 'b' });
  assert.equal(t.idOf(7), 0);
  assert.equal(t.idOf(3), 1);
  t.reset();
  assert.equal(t.idOf(7), -1);
  assert.equal(t.size, 0);
});
