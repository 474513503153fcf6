import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  VXLAN_HEADER_BYTES, VXLAN_OK, VXLAN_SHORT, VXLAN_BAD_FLAGS, VXLAN_BAD_RESERVED, VXLAN_OTHER_VNI,
  emitVxlan, parseVxlan, vxlanBufferLen, vxlanCheck, vxlanVni, writeVxlanHeader,
} from '../../../src/wire/vxlan.js';
import { LanpartyError } from '../../../src/util/errors.js';

// UDP payload of one packet from a Linux 6.18 `vxlan` device (id 42 dstport 4789), captured with
// `tcpdump -xx` on the underlay veth: header 08000000 00002a00, then the inner frame, an IPv6
// DAD neighbour solicitation from 02:00:00:00:aa:01 (86 bytes). Outer UDP length was 102.
const KERNEL_VNI42 =
  '0800000000002a00' +
  '3333ff00aa0102000000aa0186dd' +
  '6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff00aa01' +
  '8700cbef00000000fe80000000000000000000fffe00aa010e01dc3ca4acce41';

test('kernel capture: header parses as VNI 42, I flag only, inner frame follows', () => {
  const b = Buffer.from(KERNEL_VNI42, 'hex');
  assert.equal(b.length, 102 - 8);
  assert.deepEqual(parseVxlan(b, 0, b.length), { vni: 42, payloadBytes: 86 });
  assert.equal(vxlanCheck(b, 0, b.length, 42), VXLAN_OK);
  assert.equal(vxlanVni(b, 0), 42);
  assert.equal(b.subarray(VXLAN_HEADER_BYTES, VXLAN_HEADER_BYTES + 6).toString('hex'), '3333ff00aa01');
});

test('emit writes the kernel bytes; round trip over the VNI range edges', () => {
  const out = Buffer.alloc(8);
  emitVxlan({ vni: 42, payloadBytes: 0 }, out, 0);
  assert.equal(out.toString('hex'), '0800000000002a00');
  for (const vni of [0, 1, 0xff, 0x100, 0xabcdef, 0xffffff]) {
    const b = Buffer.alloc(vxlanBufferLen({ vni, payloadBytes: 14 }), 0x55);
    emitVxlan({ vni, payloadBytes: 14 }, b, 0);
    assert.deepEqual(parseVxlan(b, 0, b.length), { vni, payloadBytes: 14 });
    assert.equal(b[7], 0, 'reserved byte stays zero');
  }
  // RFC 7348 §5 layout: VNI in bytes 4-6, most significant first.
  writeVxlanHeader(out, 0, 0x123456);
  assert.equal(out.toString('hex'), '0800000012345600');
});

test('emit rejects VNIs outside 24 bits', () => {
  for (const vni of [-1, 0x1000000, 1.5, NaN]) {
    assert.throws(() => emitVxlan({ vni, payloadBytes: 0 }, Buffer.alloc(8), 0), (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_WIRE' && /VNI/.test(e.message));
  }
});

test('length boundaries: 7 bytes fail, 8 bytes are an empty payload', () => {
  const b = Buffer.from('0800000000002a00', 'hex');
  assert.throws(() => parseVxlan(b, 0, 7), /header needs 8 bytes, got 7/);
  assert.equal(vxlanCheck(b, 0, 7, 42), VXLAN_SHORT);
  assert.equal(vxlanCheck(b, 0, 0, 42), VXLAN_SHORT);
  assert.deepEqual(parseVxlan(b, 0, 8), { vni: 42, payloadBytes: 0 });
  assert.equal(vxlanCheck(b, 0, 8, 42), VXLAN_OK);
});

test('flags other than I alone, and reserved bits, are rejected (as Linux and OVS do)', () => {
  const cases: Array<[string, number]> = [
    ['0000000000002a00', VXLAN_BAD_FLAGS],   // I flag missing
    ['0c00000000002a00', VXLAN_BAD_FLAGS],   // GPE-style P bit
    ['8800000000002a00', VXLAN_BAD_FLAGS],   // GBP G bit
    ['0800000100002a00', VXLAN_BAD_FLAGS],   // reserved bits of the first word
    ['0880000000002a00', VXLAN_BAD_FLAGS],
    ['0800000000002a01', VXLAN_BAD_RESERVED],
  ];
  for (const [hex, want] of cases) {
    const b = Buffer.from(hex, 'hex');
    assert.equal(vxlanCheck(b, 0, 8, 42), want, hex);
    assert.throws(() => parseVxlan(b, 0, 8), (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_WIRE', hex);
  }
  assert.match(String((() => { try { parseVxlan(Buffer.from('0c00000000002a00', 'hex'), 0, 8); } catch (e) { return (e as Error).message; } })()), /0x0c000000, expected 0x08000000/);
});

test('another VNI is a valid header, classified as other-vni', () => {
  const b = Buffer.from('0800000000002b00', 'hex');   // VNI 43
  assert.equal(vxlanCheck(b, 0, 8, 42), VXLAN_OTHER_VNI);
  assert.equal(vxlanCheck(b, 0, 8, 43), VXLAN_OK);
});

test('offsets are honoured', () => {
  const b = Buffer.concat([Buffer.from('ffff', 'hex'), Buffer.from('0800000000002a00', 'hex')]);
  assert.equal(vxlanCheck(b, 2, 8, 42), VXLAN_OK);
  assert.equal(vxlanVni(b, 2), 42);
});

test('random bytes only ever give a check code or LP_ERR_WIRE', () => {
  let seed = 12345;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
  for (let n = 0; n < 2000; n++) {
    const len = rnd() % 24;
    const b = Buffer.alloc(len);
    for (let i = 0; i < len; i++) b[i] = rnd();
    if (len >= 1 && rnd() < 128) b[0] = 0x08;
    const c = vxlanCheck(b, 0, len, 42);
    assert.ok(c >= 0 && c <= 4);
    try {
      parseVxlan(b, 0, len);
    } catch (e) {
      assert.ok(e instanceof LanpartyError && e.code === 'LP_ERR_WIRE');
    }
  }
});
