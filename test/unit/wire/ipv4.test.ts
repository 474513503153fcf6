import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LanpartyError } from '../../../src/util/errors.js';
import {
  IPV4_HEADER_BYTES, emitIpv4, formatIpv4Address, parseIpv4, parseIpv4Address, parseIpv4Cidr,
} from '../../../src/wire/ipv4.js';
import { UDHCPC_DISCOVER_HEX } from '../../../lab/golden.js';

const wireErr = (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_WIRE';

test('parses the IPv4 header of a real udhcpc DISCOVER', () => {
  const f = Buffer.from(UDHCPC_DISCOVER_HEX, 'hex');
  const ip = parseIpv4(f, 14, f.length - 14);
  assert.equal(ip.src, 0);
  assert.equal(ip.dst, 0xffffffff);
  assert.equal(ip.protocol, 17);
  assert.equal(ip.ttl, 64);
  assert.equal(ip.headerBytes, 20);
  assert.equal(ip.payloadBytes, 308);
  assert.equal(ip.moreFragments, false);
});

test('emit then parse round trip; emitted header equals the golden one', () => {
  const f = Buffer.from(UDHCPC_DISCOVER_HEX, 'hex');
  const b = Buffer.alloc(IPV4_HEADER_BYTES + 308);
  emitIpv4({ src: 0, dst: 0xffffffff, protocol: 17, ttl: 64, ident: 0, dontFragment: false, payloadBytes: 308 }, b, 0);
  assert.deepEqual(b.subarray(0, 20), f.subarray(14, 34));
  const repr = { src: 0x0a4d0001, dst: 0x0a4d000a, protocol: 1, ttl: 63, ident: 77, dontFragment: true, payloadBytes: 0 };
  const h = Buffer.alloc(20);
  emitIpv4(repr, h, 0);
  const p = parseIpv4(h, 0, 20);
  assert.deepEqual({ src: p.src, dst: p.dst, protocol: p.protocol, ttl: p.ttl, ident: p.ident, dontFragment: p.dontFragment, payloadBytes: p.payloadBytes }, repr);
});

test('length boundaries and bad fields throw LP_ERR_WIRE', () => {
  const h = Buffer.alloc(28);
  emitIpv4({ src: 1, dst: 2, protocol: 17, ttl: 64, ident: 0, dontFragment: false, payloadBytes: 8 }, h, 0);
  assert.doesNotThrow(() => parseIpv4(h, 0, 28));
  assert.throws(() => parseIpv4(h, 0, 27), wireErr);                    // total length 28 > 27
  assert.throws(() => parseIpv4(h, 0, 19), wireErr);                    // one byte short of a header
  const v6 = Buffer.from(h); v6[0] = 0x65;
  assert.throws(() => parseIpv4(v6, 0, 28), /version/);
  const ihl = Buffer.from(h); ihl[0] = 0x44;
  assert.throws(() => parseIpv4(ihl, 0, 28), /IHL/);
  const sum = Buffer.from(h); sum[8] ^= 1;
  assert.throws(() => parseIpv4(sum, 0, 28), /checksum/);
  const tl = Buffer.from(h); tl.writeUInt16BE(19, 2);
  assert.throws(() => parseIpv4(tl, 0, 28), wireErr);
});

test('random bytes raise only LP_ERR_WIRE', () => {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.alloc(rnd() % 64);
    for (let j = 0; j < b.length; j++) b[j] = rnd();
    if (b.length > 0) b[0] = 0x45;
    try { parseIpv4(b, 0, b.length); } catch (e) { assert.ok(wireErr(e)); }
  }
});

test('addresses and CIDR', () => {
  assert.equal(parseIpv4Address('10.77.0.1'), 0x0a4d0001);
  assert.equal(formatIpv4Address(0xffffffff), '255.255.255.255');
  for (const bad of ['10.77.0', '10.77.0.256', '010.1.1.1', 'a.b.c.d', '1.2.3.4.5']) assert.throws(() => parseIpv4Address(bad), wireErr);
  const c = parseIpv4Cidr('10.77.0.0/24');
  assert.equal(c.mask, 0xffffff00);
  assert.equal(c.broadcast, 0x0a4d00ff);
  assert.throws(() => parseIpv4Cidr('10.77.0.1/24'), /host bits/);
  assert.throws(() => parseIpv4Cidr('10.77.0.0/33'), wireErr);
  assert.equal(parseIpv4Cidr('0.0.0.0/0').mask, 0);
});
