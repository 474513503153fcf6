import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LanpartyError } from '../../../src/util/errors.js';
import {
  BOOTP_MIN_BYTES, DHCPDISCOVER, DHCPOFFER, DHCP_MIN_BYTES, dhcpBufferLen, dhcpMessageName, emitDhcp, emptyDhcpRepr, parseDhcp,
} from '../../../src/wire/dhcp.js';
import { DHCLIENT_DISCOVER_HEX, UDHCPC_DISCOVER_HEX } from '../../../lab/golden.js';

const wireErr = (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_WIRE';
const payloadOf = (hex: string) => Buffer.from(hex, 'hex').subarray(42);

test('parses a real udhcpc DISCOVER', () => {
  const m = parseDhcp(payloadOf(UDHCPC_DISCOVER_HEX), 0, 300);
  assert.equal(m.op, 1);
  assert.equal(m.xid, 0x9801501a);
  assert.equal(m.broadcast, false);
  assert.equal(m.chaddr, 0x525400123456);
  assert.equal(m.messageType, DHCPDISCOVER);
  assert.equal(dhcpMessageName(m.messageType), 'discover');
  assert.equal(m.maxMessageSize, 576);
  assert.deepEqual(m.parameterRequestList, [1, 3, 6, 12, 15, 28, 42]);
  assert.equal(m.hostname, 'guest1');
  assert.equal(m.vendorClassId, 'udhcp 1.35.0');
  assert.equal(m.clientId?.toString('hex'), '01525400123456');
});

test('parses a real ISC dhclient DISCOVER (no client id, broadcast flag clear)', () => {
  const m = parseDhcp(payloadOf(DHCLIENT_DISCOVER_HEX), 0, 300);
  assert.equal(m.xid, 0x29c2064f);
  assert.equal(m.broadcast, false);
  assert.equal(m.clientId, null);
  assert.equal(m.hostname, 'vm');
  assert.equal(m.chaddr, 0x525400123457);
});

test('emit then parse round trip with every option lanparty writes', () => {
  const r = emptyDhcpRepr();
  Object.assign(r, {
    op: 2, xid: 0xdeadbeef, secs: 3, broadcast: true, ciaddr: 1, yiaddr: 0x0a4d000a, siaddr: 3, giaddr: 0, chaddr: 0x020000000001,
    messageType: DHCPOFFER, serverId: 0x0a4d0001, requestedIp: 0x0a4d000b, leaseSeconds: 3600, renewalSeconds: 1800,
    rebindingSeconds: 3150, subnetMask: 0xffffff00, broadcastAddress: 0x0a4d00ff, routers: [0x0a4d0001], dnsServers: [1, 2],
    domainName: 'lan', hostname: 'guest1', mtu: 1500, clientId: Buffer.from('01020000000001', 'hex'),
    parameterRequestList: [1, 3], maxMessageSize: 1500, message: 'hi', vendorClassId: 'v',
  });
  const b = emitDhcp(r);
  assert.equal(b.length, dhcpBufferLen(r));
  assert.ok(b.length >= BOOTP_MIN_BYTES);
  assert.deepEqual(parseDhcp(b, 0, b.length), r);
});

test('option longer than 255 bytes is split and concatenated (RFC 3396)', () => {
  const r = emptyDhcpRepr();
  r.messageType = DHCPDISCOVER;
  r.dnsServers = Array.from({ length: 70 }, (_, i) => i + 1);   // 280 bytes
  const b = emitDhcp(r);
  assert.deepEqual(parseDhcp(b, 0, b.length).dnsServers, r.dnsServers);
});

test('length boundaries and bad options throw LP_ERR_WIRE naming the field', () => {
  const p = Buffer.from(payloadOf(UDHCPC_DISCOVER_HEX));
  assert.doesNotThrow(() => parseDhcp(p, 0, DHCP_MIN_BYTES + 3));            // message type option only, no end
  assert.throws(() => parseDhcp(p, 0, DHCP_MIN_BYTES - 1), wireErr);
  assert.throws(() => parseDhcp(p, 0, DHCP_MIN_BYTES + 1), /no length byte/);
  assert.throws(() => parseDhcp(p, 0, DHCP_MIN_BYTES + 2), /runs past the end/);
  const cookie = Buffer.from(p); cookie[236] = 0;
  assert.throws(() => parseDhcp(cookie, 0, 300), /magic cookie/);
  const op = Buffer.from(p); op[0] = 3;
  assert.throws(() => parseDhcp(op, 0, 300), /op 3/);
  const hlen = Buffer.from(p); hlen[2] = 16;
  assert.throws(() => parseDhcp(hlen, 0, 300), /htype/);
  const badType = Buffer.from(p); badType[241] = 2;                         // option 53 with length 2
  assert.throws(() => parseDhcp(badType, 0, 300), wireErr);
  const badMax = Buffer.from(p); badMax.writeUInt16BE(100, 245);           // option 57 below 576
  assert.throws(() => parseDhcp(badMax, 0, 300), /maximum message size/);
});

test('a hostname of 63 bytes is accepted, 64 bytes is dropped, control bytes are rejected', () => {
  const r = emptyDhcpRepr();
  r.messageType = DHCPDISCOVER;
  r.hostname = 'h'.repeat(63);
  const ok = emitDhcp(r);
  assert.equal(parseDhcp(ok, 0, ok.length).hostname, r.hostname);
  r.hostname = 'h'.repeat(64);
  const big = emitDhcp(r);
  assert.throws(() => parseDhcp(big, 0, big.length), /hostname/);
  r.hostname = 'a\nb';
  const ctl = emitDhcp(r);
  assert.throws(() => parseDhcp(ctl, 0, ctl.length), /hostname/);
  r.hostname = 'nul\0';
  const nul = emitDhcp(r);
  assert.equal(parseDhcp(nul, 0, nul.length).hostname, 'nul');
});

test('option overload (52) reads options from the file field', () => {
  const r = emptyDhcpRepr();
  r.messageType = DHCPDISCOVER;
  const b = emitDhcp(r);
  // Replace the end option with 52=1 and put a hostname option in the file field.
  b[243] = 52; b[244] = 1; b[245] = 1; b[246] = 255;
  Buffer.from([12, 3, 0x61, 0x62, 0x63, 255]).copy(b, 108);
  assert.equal(parseDhcp(b, 0, b.length).hostname, 'abc');
});

test('random mutations of a real DISCOVER raise only LP_ERR_WIRE', () => {
  const base = payloadOf(UDHCPC_DISCOVER_HEX);
  let seed = 42;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (let i = 0; i < 5000; i++) {
    const b = Buffer.from(base);
    for (let k = 0; k < 4; k++) b[240 + (rnd() % 60)] = rnd() & 0xff;
    const len = 200 + (rnd() % 101);
    try { parseDhcp(b, 0, len); } catch (e) { assert.ok(wireErr(e), String(e)); }
  }
});
