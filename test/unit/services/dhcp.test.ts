import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DHCPACK, DHCPDECLINE, DHCPDISCOVER, DHCPINFORM, DHCPNAK, DHCPOFFER, DHCPRELEASE, DHCPREQUEST, DhcpOptionLimitError, emitDhcp, parseDhcp,
} from '../../../src/wire/dhcp.js';
import { LEASE_FILE_MAX_BYTES, LEASE_WRITE_INTERVAL_MS } from '../../../src/services/dhcp/lease-store.js';
import type { PortKind } from '../../../src/switch/index.js';
import { LanpartyError } from '../../../src/util/errors.js';
import { BROADCAST_MAC } from '../../../src/wire/ethernet.js';
import { IPV4_BROADCAST } from '../../../src/wire/ipv4.js';
import { DHCLIENT_DISCOVER_HEX, UDHCPC_DISCOVER_HEX } from '../../../lab/golden.js';
import {
  HOST_IP, MAC_A, MAC_B, MAC_C, arpFrame, clientMsg, decodeArp, decodeDhcp, dhcpFrame, ipv4UdpFrame, rig, takeWhenSent,
} from './fakes.js';
import type { Rig } from './fakes.js';

const IP10 = 0x0a4d000a;
const IP11 = 0x0a4d000b;
const CLONE_ID = Buffer.from('ff00000001000100012b3c4d5e6f7a8b9c', 'hex');   // systemd-networkd style DUID-based id

/** DISCOVER, then REQUEST the offered address; returns the ACK. */
function lease(r: Rig, mac: number, fields: Record<string, unknown> = {}) {
  r.deliver(dhcpFrame(clientMsg(mac, DHCPDISCOVER, fields)));
  const offer = decodeDhcp(r.sink.take()[0]).dhcp;
  assert.equal(offer.messageType, DHCPOFFER);
  r.deliver(dhcpFrame(clientMsg(mac, DHCPREQUEST, { ...fields, serverId: HOST_IP, requestedIp: offer.yiaddr })));
  const ack = decodeDhcp(r.sink.take()[0]).dhcp;
  assert.equal(ack.messageType, DHCPACK);
  return ack;
}

test('real udhcpc DISCOVER → OFFER → REQUEST → ACK, unicast because the broadcast flag is clear', async () => {
  const r = await rig();
  r.deliver(Buffer.from(UDHCPC_DISCOVER_HEX, 'hex'));
  const frames = r.sink.take();
  assert.equal(frames.length, 1);
  const o = decodeDhcp(frames[0]);
  assert.equal(o.ethDst, 0x525400123456);
  assert.equal(o.ipDst, IP10);
  assert.equal(o.ipSrc, HOST_IP);
  assert.equal(o.srcPort, 67);
  assert.equal(o.dstPort, 68);
  const offer = o.dhcp;
  assert.equal(offer.messageType, DHCPOFFER);
  assert.equal(offer.xid, 0x9801501a);
  assert.equal(offer.yiaddr, IP10);
  assert.equal(offer.serverId, HOST_IP);
  assert.equal(offer.leaseSeconds, 3600);
  assert.equal(offer.renewalSeconds, 1800);
  assert.equal(offer.rebindingSeconds, 3150);
  assert.equal(offer.subnetMask, 0xffffff00);
  assert.equal(offer.broadcastAddress, 0x0a4d00ff);
  assert.deepEqual(offer.routers, []);                 // isolated LAN: no gateway unless configured
  assert.deepEqual(offer.dnsServers, [HOST_IP]);
  assert.equal(offer.domainName, 'lan');
  assert.equal(offer.hostname, 'guest1');
  assert.equal(offer.mtu, null);
  assert.equal(offer.clientId?.toString('hex'), '01525400123456');   // RFC 6842 echo

  const req = clientMsg(0x525400123456, DHCPREQUEST, {
    xid: 0x9801501a, serverId: HOST_IP, requestedIp: IP10, hostname: 'guest1', clientId: Buffer.from('01525400123456', 'hex'),
  });
  r.deliver(dhcpFrame(req));
  const a = decodeDhcp(r.sink.take()[0]);
  assert.equal(a.dhcp.messageType, DHCPACK);
  assert.equal(a.dhcp.yiaddr, IP10);
  assert.equal(a.ethDst, 0x525400123456);
  const st = r.services.status();
  assert.equal(st.dhcp!.leases.length, 1);
  assert.deepEqual({ ...st.dhcp!.leases[0] }, {
    mac: '52:54:00:12:34:56', ip: '10.77.0.10', hostname: 'guest1', expiresInS: 3600, clientId: '01525400123456', state: 'bound', static: false,
  });
  assert.equal(st.dhcp!.counters.rx.discover, 1);
  assert.equal(st.dhcp!.counters.tx.ack, 1);
  assert.ok(r.lines.some((l) => l.includes('lease 10.77.0.10 granted to 52:54:00:12:34:56 (guest1)')));
});

test('real dhclient DISCOVER (broadcast flag off) gets a unicast OFFER to its MAC and yiaddr', async () => {
  const r = await rig();
  r.deliver(Buffer.from(DHCLIENT_DISCOVER_HEX, 'hex'));
  const o = decodeDhcp(r.sink.take()[0]);
  assert.equal(o.ethDst, 0x525400123457);
  assert.equal(o.ipDst, IP10);
  assert.equal(o.dhcp.xid, 0x29c2064f);
  assert.equal(o.dhcp.clientId, null);
});

test('broadcast flag set: OFFER and ACK go to ff:ff:ff:ff:ff:ff and 255.255.255.255; NAK is always broadcast', async () => {
  const r = await rig({ router: '10.77.0.254', mtu: 1400, dns: ['9.9.9.9'] });
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER, { broadcast: true })));
  const o = decodeDhcp(r.sink.take()[0]);
  assert.equal(o.ethDst, BROADCAST_MAC);
  assert.equal(o.ipDst, IPV4_BROADCAST);
  assert.equal(o.dhcp.broadcast, true);
  assert.deepEqual(o.dhcp.routers, [0x0a4d00fe]);
  assert.deepEqual(o.dhcp.dnsServers, [0x09090909]);
  assert.equal(o.dhcp.mtu, 1400);
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPREQUEST, { broadcast: true, serverId: HOST_IP, requestedIp: IP10 })));
  const a = decodeDhcp(r.sink.take()[0]);
  assert.equal(a.ethDst, BROADCAST_MAC);
  assert.equal(a.dhcp.messageType, DHCPACK);
  r.deliver(dhcpFrame(clientMsg(MAC_B, DHCPREQUEST, { requestedIp: 0xc0a80105 })));   // INIT-REBOOT, wrong network
  const n = decodeDhcp(r.sink.take()[0]);
  assert.equal(n.dhcp.messageType, DHCPNAK);
  assert.equal(n.ethDst, BROADCAST_MAC);
  assert.equal(n.ipDst, IPV4_BROADCAST);
  assert.equal(n.dhcp.yiaddr, 0);
  assert.equal(n.dhcp.leaseSeconds, null);
});

test('RENEWING (unicast) and REBINDING (broadcast) extend the lease; replies go to ciaddr', async () => {
  const r = await rig();
  lease(r, MAC_A);
  r.clock.t += 1800_000;
  // A unicast frame for another MAC (flooded unknown unicast) is not for the virtual host.
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPREQUEST, { ciaddr: IP10 }), { dstIp: HOST_IP, ethDst: MAC_C }));
  assert.equal(r.sink.take().length, 0);
  const hostMac = parseInt(r.services.status().hostMac.replace(/:/g, ''), 16);
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPREQUEST, { ciaddr: IP10 }), { dstIp: HOST_IP, ethDst: hostMac }));
  const renew = decodeDhcp(r.sink.take()[0]);
  assert.equal(renew.dhcp.messageType, DHCPACK);
  assert.equal(renew.ipDst, IP10);
  assert.equal(renew.ethDst, MAC_A);
  assert.equal(renew.dhcp.ciaddr, IP10);
  assert.equal(r.services.status().dhcp!.leases[0].expiresInS, 3600);
  r.clock.t += 3200_000;
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPREQUEST, { ciaddr: IP10 })));           // REBINDING: broadcast
  const rebind = decodeDhcp(r.sink.take()[0]);
  assert.equal(rebind.dhcp.messageType, DHCPACK);
  assert.equal(rebind.ipDst, IP10);
});

test('INIT-REBOOT: own address → ACK; another client\'s address → NAK; address outside the LAN → NAK', async () => {
  const r = await rig();
  lease(r, MAC_A);
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPREQUEST, { requestedIp: IP10 })));
  assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.messageType, DHCPACK);
  r.deliver(dhcpFrame(clientMsg(MAC_B, DHCPREQUEST, { requestedIp: IP10 })));      // a clone with the same lease file
  assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.messageType, DHCPNAK);
  r.deliver(dhcpFrame(clientMsg(MAC_B, DHCPREQUEST, { requestedIp: 0x0a4e000a })));
  assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.messageType, DHCPNAK);
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPREQUEST, { requestedIp: IP11 })));      // holds .10, asks for .11
  assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.messageType, DHCPNAK);
  r.deliver(dhcpFrame(clientMsg(MAC_B, DHCPREQUEST, { requestedIp: IP11 })));      // free pool address, no record
  assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.messageType, DHCPACK);
});

test('SELECTING another server drops our offer; DECLINE holds the address; RELEASE frees it', async () => {
  const r = await rig({ poolStart: '10.77.0.10', poolEnd: '10.77.0.11' });
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER)));
  assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.yiaddr, IP10);
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPREQUEST, { serverId: 0x0a4d00fe, requestedIp: 0x0a4d0063 })));
  assert.equal(r.sink.take().length, 0);
  assert.equal(r.services.status().dhcp!.counters.drops['other-server'], 1);
  assert.equal(r.services.status().dhcp!.leases.length, 0);

  const first = lease(r, MAC_A).yiaddr;
  const firstText = first === IP10 ? '10.77.0.10' : '10.77.0.11';
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDECLINE, { serverId: HOST_IP, requestedIp: first })));
  assert.equal(r.sink.take().length, 0);
  const held = r.services.status().dhcp!.leases.find((l) => l.ip === firstText);
  assert.equal(held?.state, 'declined');
  assert.ok(r.lines.some((l) => l.includes(`lease ${firstText} declined by 52:54:00:00:00:01`)));
  const second = lease(r, MAC_A).yiaddr;
  assert.notEqual(second, first);

  // Pool now: one address declined, the other bound to A. B gets nothing.
  r.deliver(dhcpFrame(clientMsg(MAC_B, DHCPDISCOVER)));
  assert.equal(r.sink.take().length, 0);
  assert.ok(r.lines.some((l) => /no free address for 52:54:00:00:00:02: pool 10.77.0.10-10.77.0.11 is full/.test(l)));
  assert.equal(r.services.status().dhcp!.counters.drops['pool-full'], 1);

  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPRELEASE, { ciaddr: second, serverId: HOST_IP }), { dstIp: HOST_IP, ethDst: BROADCAST_MAC }));
  assert.ok(r.lines.some((l) => /lease 10\.77\.0\.1[01] released by 52:54:00:00:00:01/.test(l)));
  assert.equal(lease(r, MAC_B).yiaddr, second);
});

test('INFORM gets an ACK with no lease and no yiaddr, unicast to ciaddr', async () => {
  const r = await rig();
  r.deliver(dhcpFrame(clientMsg(MAC_C, DHCPINFORM, { ciaddr: 0x0a4d0005 })));
  const a = decodeDhcp(r.sink.take()[0]);
  assert.equal(a.dhcp.messageType, DHCPACK);
  assert.equal(a.dhcp.yiaddr, 0);
  assert.equal(a.dhcp.leaseSeconds, null);
  assert.equal(a.dhcp.subnetMask, 0xffffff00);
  assert.equal(a.ipDst, 0x0a4d0005);
  assert.equal(a.ethDst, MAC_C);
  assert.equal(r.services.status().dhcp!.leases.length, 0);
});

test('clones with one client id get different addresses by default, and a warning names both MACs', async () => {
  const r = await rig();
  const a = lease(r, MAC_A, { clientId: CLONE_ID });
  const b = lease(r, MAC_B, { clientId: CLONE_ID });
  assert.notEqual(a.yiaddr, b.yiaddr);
  const warn = r.lines.filter((l) => l.includes('warning:') && l.includes('client identifier'));
  assert.equal(warn.length, 1);
  assert.ok(warn[0].includes('52:54:00:00:00:01') && warn[0].includes('52:54:00:00:00:02'), warn[0]);
  assert.ok(warn[0].includes('keyed by MAC'));
});

test('keyBy client-id: clones share one address (RFC 2132 behaviour), still with the warning', async () => {
  const r = await rig({ keyBy: 'client-id' });
  const a = lease(r, MAC_A, { clientId: CLONE_ID });
  const b = lease(r, MAC_B, { clientId: CLONE_ID });
  assert.equal(a.yiaddr, b.yiaddr);
  assert.ok(r.lines.some((l) => l.startsWith('dhcp: warning:') && l.includes('share one address')));
});

test('leases persist atomically and a new instance honours them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lanparty-leases-'));
  try {
    const file = join(dir, 'leases.json');
    const r1 = await rig({ leaseFile: file });
    r1.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER, { hostname: 'alpha' })));
    assert.equal(decodeDhcp(r1.sink.take()[0]).dhcp.yiaddr, IP10);
    r1.deliver(dhcpFrame(clientMsg(MAC_A, DHCPREQUEST, { hostname: 'alpha', serverId: HOST_IP, requestedIp: IP10 })));
    // The ACK waits for the lease file: it is on disk when the client hears it.
    assert.equal(r1.sink.frames.length, 0);
    assert.equal(decodeDhcp((await takeWhenSent(r1))[0]).dhcp.messageType, DHCPACK);
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(doc.version, 1);
    assert.deepEqual(doc.leases.map((l: { mac: string; ip: string; hostname: string }) => [l.mac, l.ip, l.hostname]), [['52:54:00:00:00:01', '10.77.0.10', 'alpha']]);
    assert.deepEqual(readdirSync(dir), ['leases.json']);   // no temp file left behind
    await r1.services.close();

    const r2 = await rig({ leaseFile: file });
    assert.equal(r2.services.status().dhcp!.leases[0].ip, '10.77.0.10');
    r2.deliver(dhcpFrame(clientMsg(MAC_B, DHCPDISCOVER, { requestedIp: IP10 })));
    assert.equal(decodeDhcp(r2.sink.take()[0]).dhcp.yiaddr, IP11);      // never another MAC's address
    r2.deliver(dhcpFrame(clientMsg(MAC_B, DHCPREQUEST, { requestedIp: IP10 })));
    assert.equal(decodeDhcp(r2.sink.take()[0]).dhcp.messageType, DHCPNAK);
    r2.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER)));
    assert.equal(decodeDhcp(r2.sink.take()[0]).dhcp.yiaddr, IP10);
    await r2.services.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupt lease file is moved aside and the server starts empty', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lanparty-leases-'));
  try {
    const file = join(dir, 'leases.json');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, '{"version": 1, "leases": [');
    const r = await rig({ leaseFile: file });
    assert.equal(r.services.status().dhcp!.leases.length, 0);
    assert.ok(r.lines.some((l) => l.startsWith('error: dhcp: lease file') && l.includes('moved it to')));
    assert.equal(readdirSync(dir).filter((n) => n.startsWith('leases.json.corrupt-')).length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ARP probe: an answer marks the address in use and the next one is offered', async () => {
  const r = await rig({ probeMs: 300 });
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER)));
  const probe = decodeArp(r.sink.take()[0]);
  assert.equal(probe.ethDst, BROADCAST_MAC);
  assert.equal(probe.operation, 1);
  assert.equal(probe.senderIp, 0);                 // RFC 5227 probe
  assert.equal(probe.targetIp, IP10);
  // A retransmitted DISCOVER while probing sends nothing new.
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER, { xid: 77 })));
  assert.equal(r.sink.take().length, 0);
  // Someone already uses .10 and answers.
  r.deliver(arpFrame(MAC_C, probe.senderMac, { operation: 2, senderMac: MAC_C, senderIp: IP10, targetMac: probe.senderMac, targetIp: 0 }));
  r.timers.advance(300);
  const probe2 = decodeArp(r.sink.take()[0]);
  assert.equal(probe2.targetIp, IP11);
  r.timers.advance(299);
  assert.equal(r.sink.take().length, 0);
  r.timers.advance(1);
  const offer = decodeDhcp(r.sink.take()[0]).dhcp;
  assert.equal(offer.yiaddr, IP11);
  assert.equal(offer.xid, 77);                     // answers the newest transaction
  const st = r.services.status().dhcp!;
  assert.equal(st.leases.find((l) => l.ip === '10.77.0.10')?.state, 'conflict');
  assert.equal(st.counters.probeConflicts, 1);
  assert.ok(r.lines.some((l) => l.includes('10.77.0.10 is already used by 52:54:00:00:00:03')));
  // The client's own later DISCOVER does not probe again: it is offered its address at once.
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER)));
  assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.yiaddr, IP11);
});

test('ARP probe conflict: the MAC that answered for the address renews it and gets an ACK, not a NAK', async () => {
  // After a lost lease file: MAC_C still uses .10 from before, answers the probe for MAC_A's
  // DISCOVER, and later renews (seen with busybox udhcpc guests, test/netns/dhcp-restart).
  const r = await rig({ probeMs: 300 });
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER)));
  const probe = decodeArp(r.sink.take()[0]);
  r.deliver(arpFrame(MAC_C, probe.senderMac, { operation: 2, senderMac: MAC_C, senderIp: IP10, targetMac: probe.senderMac, targetIp: 0 }));
  r.timers.advance(300);
  r.sink.take();
  r.timers.advance(300);
  assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.yiaddr, IP11);
  const hostMac = parseInt(r.services.status().hostMac.replace(/:/g, ''), 16);
  r.deliver(dhcpFrame(clientMsg(MAC_C, DHCPREQUEST, { ciaddr: IP10 }), { dstIp: HOST_IP, ethDst: hostMac }));   // RENEWING
  const ack = decodeDhcp(r.sink.take()[0]).dhcp;
  assert.equal(ack.messageType, DHCPACK);
  assert.equal(ack.yiaddr, IP10);
  const rows = r.services.status().dhcp!.leases.map((l) => `${l.mac} ${l.ip} ${l.state}`);
  assert.deepEqual(rows, ['52:54:00:00:00:03 10.77.0.10 bound', '52:54:00:00:00:01 10.77.0.11 offered']);   // the hold became C's lease
  // A different MAC still cannot take the held address ...
  r.deliver(dhcpFrame(clientMsg(MAC_B, DHCPREQUEST, { requestedIp: IP10 })));         // INIT-REBOOT
  assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.messageType, DHCPNAK);
});

test('ARP probe conflict: the MAC that answered may ask for the address in a DISCOVER and is offered it', async () => {
  const r = await rig({ probeMs: 300 });
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER)));
  const probe = decodeArp(r.sink.take()[0]);
  r.deliver(arpFrame(MAC_C, probe.senderMac, { operation: 2, senderMac: MAC_C, senderIp: IP10, targetMac: probe.senderMac, targetIp: 0 }));
  r.timers.advance(300);
  r.sink.take();
  r.timers.advance(300);
  r.sink.take();
  r.deliver(dhcpFrame(clientMsg(MAC_C, DHCPDISCOVER, { requestedIp: IP10 })));
  const probe2 = decodeArp(r.sink.take()[0]);
  assert.equal(probe2.targetIp, IP10);
  // The client itself answering its own probe is not a conflict.
  r.deliver(arpFrame(MAC_C, probe.senderMac, { operation: 2, senderMac: MAC_C, senderIp: IP10, targetMac: probe.senderMac, targetIp: 0 }));
  r.timers.advance(300);
  assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.yiaddr, IP10);
});

test('static leases by MAC and by name', async () => {
  const r = await rig({ staticLeases: [{ mac: MAC_B, address: '10.77.0.50' }, { name: 'DB', address: '10.77.0.60' }] });
  assert.equal(lease(r, MAC_B).yiaddr, 0x0a4d0032);
  assert.equal(lease(r, MAC_C, { hostname: 'db' }).yiaddr, 0x0a4d003c);
  assert.equal(lease(r, MAC_A).yiaddr, IP10);
  assert.equal(r.services.status().dhcp!.leases.filter((l) => l.static).length, 2);
});

test('another DHCP server on the LAN is reported once with its MAC and address', async () => {
  const r = await rig();
  const offer = clientMsg(MAC_A, DHCPOFFER, { op: 2, yiaddr: 0x0a4d0064, serverId: 0x0a4d00fe });
  const f = ipv4UdpFrame(MAC_C, BROADCAST_MAC, 0x0a4d00fe, IPV4_BROADCAST, 67, 68, emitDhcp(offer));
  r.deliver(f);
  r.deliver(f);
  const warn = r.lines.filter((l) => l.includes('another DHCP server'));
  assert.equal(warn.length, 1);
  assert.ok(warn[0].includes('52:54:00:00:00:03') && warn[0].includes('10.77.0.254'));
  assert.equal(r.services.status().dhcp!.counters.foreignServerReplies, 2);
});

test('malformed DHCP is counted and dropped; the server keeps serving', async () => {
  const r = await rig();
  const good = emitDhcp(clientMsg(MAC_A, DHCPDISCOVER));
  const truncated = good.subarray(0, 200);
  const badLen = Buffer.from(good); badLen[241] = 200;                          // option 53 length past the end
  const huge = emitDhcp(clientMsg(MAC_A, DHCPDISCOVER, { hostname: 'x'.repeat(200) }));
  const bootp = Buffer.from(good); bootp[236] = 0;
  for (const p of [truncated, badLen, huge, bootp]) r.deliver(ipv4UdpFrame(MAC_A, BROADCAST_MAC, 0, IPV4_BROADCAST, 68, 67, p));
  assert.equal(r.sink.take().length, 0);
  assert.equal(r.services.status().dhcp!.counters.drops.malformed, 4);
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER)));
  assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.messageType, DHCPOFFER);
});

test('DHCP off: no replies on port 67, ARP still answered', async () => {
  const r = await rig({}, { dhcp: null });
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER)));
  assert.equal(r.sink.take().length, 0);
  assert.equal(r.services.status().dhcp, null);
  r.deliver(arpFrame(MAC_A, BROADCAST_MAC, { operation: 1, senderMac: MAC_A, senderIp: IP10, targetMac: 0, targetIp: HOST_IP }));
  assert.equal(decodeArp(r.sink.take()[0]).operation, 2);
});

/** A DHCP message with option 61 given as raw pieces (RFC 3396 concatenation). */
function withClientIdPieces(mac: number, pieces: number[]): Buffer {
  const base = emitDhcp(clientMsg(mac, DHCPDISCOVER));
  const end = base.indexOf(0xff, 240);
  const parts: Buffer[] = [base.subarray(0, end)];
  for (const n of pieces) parts.push(Buffer.from([61, n]), Buffer.alloc(n, 0x41));
  parts.push(Buffer.from([0xff]));
  return Buffer.concat(parts);
}

test('client id pieces join up to 255 bytes; past that the message is a typed LP_ERR_WIRE and a counted drop', async () => {
  const ok = parseDhcp(withClientIdPieces(MAC_A, [200, 55]), 0, 0 + withClientIdPieces(MAC_A, [200, 55]).length);
  assert.equal(ok.clientId!.length, 255);
  // 60 KB of client id in 240 pieces (a jumbo frame): refused after the second piece.
  const flood = withClientIdPieces(MAC_A, new Array(240).fill(250));
  assert.throws(() => parseDhcp(flood, 0, flood.length), (e: unknown) => e instanceof DhcpOptionLimitError && e.code === 'LP_ERR_WIRE' && e.option === 61 && /option 61 joins to more than 255 bytes/.test(e.message));
  // Many empty pieces are refused too; options lanparty does not read are skipped, never joined.
  const empties = withClientIdPieces(MAC_A, new Array(100).fill(0));
  assert.throws(() => parseDhcp(empties, 0, empties.length), /more than 8 pieces/);
  const base = emitDhcp(clientMsg(MAC_A, DHCPDISCOVER));
  const unknown = Buffer.concat([base.subarray(0, base.indexOf(0xff, 240)), ...new Array(200).fill(Buffer.concat([Buffer.from([224, 250]), Buffer.alloc(250)])), Buffer.from([0xff])]);
  assert.equal(parseDhcp(unknown, 0, unknown.length).messageType, DHCPDISCOVER);

  const r = await rig();
  r.deliver(ipv4UdpFrame(MAC_A, BROADCAST_MAC, 0, IPV4_BROADCAST, 68, 67, flood));
  assert.equal(r.sink.take().length, 0);
  assert.equal(r.services.status().dhcp!.counters.drops['option-too-long'], 1);
  assert.equal(r.services.status().dhcp!.leases.length, 0);
});

test('a request whose chaddr is not the frame\'s source MAC is dropped and counted', async () => {
  const r = await rig();
  r.deliver(dhcpFrame(clientMsg(MAC_B, DHCPDISCOVER), { ethSrc: MAC_A }));
  assert.equal(r.sink.take().length, 0);
  const st = r.services.status().dhcp!;
  assert.equal(st.counters.drops['chaddr-mismatch'], 1);
  assert.equal(st.leases.length, 0);
  assert.ok(r.lines.some((l) => l.includes('names another client hardware address (52:54:00:00:00:02)')));
  lease(r, MAC_A);   // its own chaddr is served
});

function portsRig(limits: { maxLeasesPerPort?: number; maxLeasesPerSharedPort?: number }, kindOf: (mac: number) => PortKind) {
  // Every MAC below 0x525400000100 is on port 7, the rest on port 8.
  return rig({ ...limits }, {}, (mac) => ({ id: mac < 0x525400000100 ? 7 : 8, kind: kindOf(mac) }));
}

test('leases per guest port are limited (default 64); another port, and a freed lease, are not affected', async () => {
  const r = await portsRig({ maxLeasesPerPort: 3 }, () => 'udp');
  for (let i = 1; i <= 3; i++) lease(r, 0x525400000000 + i);
  r.deliver(dhcpFrame(clientMsg(0x525400000004, DHCPDISCOVER)));
  assert.equal(r.sink.take().length, 0, 'a fourth client behind the same port gets no offer');
  // INIT-REBOOT straight to a REQUEST is refused the same way.
  r.deliver(dhcpFrame(clientMsg(0x525400000004, DHCPREQUEST, { requestedIp: 0x0a4d0050 })));
  assert.equal(r.sink.take().length, 0);
  assert.equal(r.services.status().dhcp!.counters.drops['port-lease-limit'], 2);
  assert.ok(r.lines.some((l) => l.includes('its switch port already holds 3 live leases')));
  lease(r, 0x525400000101);                       // port 8 has room
  lease(r, 0x525400000001);                       // a client renewing its own lease is not counted against itself
  r.deliver(dhcpFrame(clientMsg(0x525400000001, DHCPRELEASE, { ciaddr: IP10 })));
  lease(r, 0x525400000004);                       // the released lease made room

  const d = await portsRig({}, () => 'unix');
  for (let i = 1; i <= 64; i++) lease(d, 0x525400000000 + i);
  d.deliver(dhcpFrame(clientMsg(0x525400000041, DHCPDISCOVER)));
  assert.equal(d.sink.take().length, 0, 'default limit 64');
});

test('shared ports (mcast, tap, vxlan, wg) have no lease limit by default, their own when set', async () => {
  const m = await portsRig({ maxLeasesPerPort: 2 }, () => 'mcast');
  for (let i = 1; i <= 10; i++) lease(m, 0x525400000000 + i);
  assert.equal(m.services.status().dhcp!.counters.drops['port-lease-limit'], 0);
  const w = await portsRig({ maxLeasesPerPort: 50, maxLeasesPerSharedPort: 2 }, () => 'wg');
  lease(w, MAC_A);
  lease(w, MAC_B);
  w.deliver(dhcpFrame(clientMsg(MAC_C, DHCPDISCOVER)));
  assert.equal(w.sink.take().length, 0);
  assert.equal(w.services.status().dhcp!.counters.drops['port-lease-limit'], 1);
});

test('lease file writes are coalesced: a burst of bindings shares a write, every ACK after its write, at most one write per interval', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lanparty-leases-'));
  try {
    const file = join(dir, 'leases.json');
    const r = await rig({ leaseFile: file });
    const macs = Array.from({ length: 20 }, (_, i) => 0x525400001000 + i);
    for (const mac of macs) {
      r.deliver(dhcpFrame(clientMsg(mac, DHCPDISCOVER)));
      const offer = decodeDhcp(r.sink.take()[0]).dhcp;
      r.deliver(dhcpFrame(clientMsg(mac, DHCPREQUEST, { serverId: HOST_IP, requestedIp: offer.yiaddr })));
      // A retransmitted REQUEST while the write runs is not answered twice.
      r.deliver(dhcpFrame(clientMsg(mac, DHCPREQUEST, { serverId: HOST_IP, requestedIp: offer.yiaddr, xid: 0x5000 })));
    }
    // The first binding's write started at once; the other 19 wait for the interval (fake time).
    const first = await takeWhenSent(r, 1);
    assert.equal(first.length, 1);
    const counters = r.services.status().dhcp!.counters;
    assert.equal(counters.leaseFile.writes, 1);
    assert.equal(counters.drops.writing, 20);
    r.timers.advance(LEASE_WRITE_INTERVAL_MS);
    const rest = await takeWhenSent(r, 19);
    assert.equal(rest.length, 19);
    for (const f of rest) assert.equal(decodeDhcp(f).dhcp.xid, 0x5000, 'the ACK answers the newest REQUEST');
    assert.equal(counters.leaseFile.writes, 2);
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(doc.leases.length, 20);
    // Renewals are answered at once and written with the next write; close writes what is pending.
    r.clock.t += 1000;
    r.deliver(dhcpFrame(clientMsg(macs[0], DHCPREQUEST, { ciaddr: IP10 }), { srcIp: IP10 }));
    assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.messageType, DHCPACK);
    await r.services.close();
    assert.equal(counters.leaseFile.writes, 3);
    const renewed = JSON.parse(readFileSync(file, 'utf8')).leases.find((l: { ip: string }) => l.ip === '10.77.0.10');
    assert.equal(renewed.expiresAtMs, r.clock.t + 3600_000);
    assert.deepEqual(readdirSync(dir), ['leases.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed lease file write: no ACK for the new binding, counted and logged; DHCP keeps serving', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lanparty-leases-'));
  try {
    const file = join(dir, 'sub', 'leases.json');   // the directory does not exist
    const r = await rig({ leaseFile: file });
    r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER)));
    assert.equal(decodeDhcp(r.sink.take()[0]).dhcp.messageType, DHCPOFFER);
    r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPREQUEST, { serverId: HOST_IP, requestedIp: IP10 })));
    const c = r.services.status().dhcp!.counters;
    for (let i = 0; i < 500 && c.drops['lease-write-failed'] === 0; i++) await new Promise((res) => setTimeout(res, 5));
    assert.equal(c.drops['lease-write-failed'], 1);
    assert.equal(c.leaseFile.writeErrors, 1);
    assert.equal(r.sink.take().length, 0);
    assert.ok(r.lines.some((l) => l.startsWith('error: dhcp: lease file') && l.includes('write failed (ENOENT)')));
    // Once the directory exists, the client's retry is written, then acknowledged.
    mkdirSync(join(dir, 'sub'));
    r.timers.advance(LEASE_WRITE_INTERVAL_MS);
    r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPREQUEST, { serverId: HOST_IP, requestedIp: IP10 })));
    assert.equal(r.sink.frames.length, 0);
    while (c.leaseFile.writes === 0) await new Promise((res) => setTimeout(res, 5));   // the retry's write
    r.timers.advance(LEASE_WRITE_INTERVAL_MS);
    assert.equal(decodeDhcp((await takeWhenSent(r))[0]).dhcp.messageType, DHCPACK);
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).leases[0].ip, '10.77.0.10');
    await r.services.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('temporary lease files of a killed run are removed at start; one of a live process is kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lanparty-leases-'));
  try {
    const file = join(dir, 'leases.json');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(`${file}.tmp-${dead}`, '{"version": 1, "leases": [');
    writeFileSync(`${file}.tmp-${process.ppid}`, 'another lanparty writing');
    writeFileSync(`${file}.tmp-notapid`, 'not ours');
    const r = await rig({ leaseFile: file });
    assert.deepEqual(readdirSync(dir).sort(), [`leases.json.tmp-${process.ppid}`, 'leases.json.tmp-notapid']);
    assert.ok(r.lines.some((l) => l.includes('removed 1 temporary file left by an earlier run')));
    await r.services.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lease file limits: an oversize file is moved aside, an unreadable one is a clear error naming it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lanparty-leases-'));
  try {
    const file = join(dir, 'leases.json');
    writeFileSync(file, '');
    truncateSync(file, LEASE_FILE_MAX_BYTES + 1);   // sparse: no disk used
    const r = await rig({ leaseFile: file });
    assert.equal(r.services.status().dhcp!.leases.length, 0);
    assert.ok(r.lines.some((l) => l.includes(`over the ${LEASE_FILE_MAX_BYTES}-byte limit`) && l.includes('moved it to')));
    await r.services.close();

    const asDir = join(dir, 'dir.json');
    mkdirSync(asDir);
    await assert.rejects(rig({ leaseFile: asDir }), (e: unknown) => e instanceof LanpartyError && e.code === 'LP_ERR_CONFIG' && e.message.includes(`lease file ${asDir}: cannot read it (EISDIR)`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an exception inside the DHCP server costs only that message: counted, logged, and serving goes on', async () => {
  let broken = true;
  const r = await rig({}, {}, () => { if (broken) throw new Error('locator bug'); return undefined; });
  r.deliver(dhcpFrame(clientMsg(MAC_A, DHCPDISCOVER)));
  assert.equal(r.sink.take().length, 0);
  const st = r.services.status();
  assert.equal(st.dhcp!.counters.handlerErrors, 1);
  assert.equal(st.vhost.drops.error, 0);
  assert.ok(r.lines.some((l) => l.startsWith('error: dhcp: internal error handling DHCP message from 52:54:00:00:00:01') && l.includes('locator bug')));
  broken = false;
  lease(r, MAC_A);
});

test('lease store: a completion callback that throws is logged; the other callbacks and later writes still run', async () => {
  const { LeaseStore } = await import('../../../src/services/dhcp/lease-store.js');
  const dir = mkdtempSync(join(tmpdir(), 'lanparty-leases-'));
  try {
    const lines: string[] = [];
    const log = { error: (m: string) => lines.push(m), info: () => {}, debug: () => {}, child() { return log; } };
    const store = new LeaseStore(join(dir, 'leases.json'), log, { nowMs: () => 0 }, { setTimeout: () => null, clearTimeout: () => {} });
    const results: boolean[] = [];
    store.commit(() => { throw new Error('callback bug'); });
    store.commit((ok) => results.push(ok));
    await store.flush();
    assert.deepEqual(results, [true]);
    assert.ok(lines.some((l) => l.includes('internal error after a write') && l.includes('callback bug')));
    store.commit((ok) => results.push(ok));
    await store.flush();
    assert.deepEqual(results, [true, true]);
    // One write at once, one for the change that came while it ran, one for the last change.
    assert.equal(store.fileCounters.writes, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
