/**
 * Every hostile neighbour at once against one `lanparty up`, in a network namespace of its own,
 * then proof that the LAN still works for the guests it is for:
 *
 *   netns (unshare --net), lo only
 *   ┌─────────────────────────────────────────────────────────────────────────────────────┐
 *   │ web client     ─ GET //, cookie "%", 16 KiB headers, 400 idle connections ───────┐  │
 *   │ control client ─ junk lines, a 16 MiB line, 400 idle connections ───────────────┤  │
 *   │ udp peer D     ─ 800 DISCOVERs, each ~60 KB of repeated option 61 pieces ────────┤  │
 *   │ udp peer Q     ─ DNS queries of 250 pointer-compressed questions each ───────────┤  │ lanparty up
 *   │ raw socket     ─ 70,000 spoofed udp source addresses, random source MACs ────────┤  │ udp, unixgram,
 *   │ tcp / unix     ─ 2,000 and 1,100 connections opened and held ────────────────────┘  │ tcp, unix, web
 *   │                                                                                     │
 *   │ then: QEMU guests a (udp) and b (unixgram) ping each other; c (udp) joins by DHCP   │
 *   └─────────────────────────────────────────────────────────────────────────────────────┘
 *
 * Asserts: the same process throughout; its RSS stays under MEMORY_BOUND_MIB; every DNS reply is
 * no larger than its query (no amplification; a plain one carries its answer, at most 512
 * bytes) and plain queries are still answered; the web view
 * and control socket still answer; the two guests talk and a new one gets a lease.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { inFreshNetns } from '../helpers/self-netns.js';
import { cleanupAll, tempDir, waitFor } from '../../lab/netns.js';
import { lanpartyMissing } from '../../lab/netns-lanparty.js';
import { guestSkipReason, macForGuest, startGuest, summarize } from '../../lab/guest.js';
import { DHCPDISCOVER, emitDhcp, emptyDhcpRepr, OPT } from '../../src/wire/dhcp.js';
import { BROADCAST_MAC, parseMac } from '../../src/wire/ethernet.js';
import { IPV4_BROADCAST, parseIpv4Address } from '../../src/wire/ipv4.js';
import { udpFrame } from '../../fuzz/seeds.js';
import { connectStream, randomMac, rssKiB, selfNs, sleep, startSelf, status, udpClient, type UdpClient } from './hostile-lib.js';

const UDP_PORT = 33301;
const TCP_PORT = 33302;
const GUEST_UDP_BASE = 34000;
/** lanparty's resident memory must stay below this during and after the attack. */
const MEMORY_BOUND_MIB = 300;
const SPOOFED_SOURCES = 70_000;
const HOST_IP = parseIpv4Address('10.77.0.1');
/** Queries up to this size (bytes) carry one question; the attack's carry 251. */
const PLAIN_QUERY_MAX = 40;

/** A DHCPDISCOVER whose client id is `pieces` option-61 pieces of 255 bytes (RFC 3396 joins them). */
function bigClientIdDiscover(mac: number, pieces: number): Buffer {
  const r = emptyDhcpRepr();
  r.chaddr = mac; r.xid = (mac & 0xffffffff) >>> 0; r.messageType = DHCPDISCOVER;
  const base = emitDhcp(r);
  // emitDhcp ends the options with END (255); splice the pieces in before it.
  const end = base.lastIndexOf(255);
  const extra: Buffer[] = [];
  for (let i = 0; i < pieces; i++) {
    const p = Buffer.alloc(257, i & 0xff);
    p[0] = OPT.clientId; p[1] = 255;
    extra.push(p);
  }
  const payload = Buffer.concat([base.subarray(0, end), ...extra, Buffer.from([255])]);
  return udpFrame(BROADCAST_MAC, mac, 0, IPV4_BROADCAST, 68, 67, payload);
}

/** A DNS query: `lanparty.lan` A, then `more` questions that point back at it (6 bytes each). */
function dnsQuery(id: number, more: number): Buffer {
  const name = Buffer.from([8, ...Buffer.from('lanparty'), 3, ...Buffer.from('lan'), 0]);
  const b = Buffer.alloc(12 + name.length + 4 + more * 6);
  b.writeUInt16BE(id, 0); b.writeUInt16BE(0x0100, 2); b.writeUInt16BE(1 + more, 4);
  name.copy(b, 12);
  let o = 12 + name.length;
  b.writeUInt16BE(1, o); b.writeUInt16BE(1, o + 2); o += 4;
  for (let i = 0; i < more; i++) { b.writeUInt16BE(0xc00c, o); b.writeUInt16BE(1, o + 2); b.writeUInt16BE(1, o + 4); o += 6; }
  return b;
}

/** UDP replies from the virtual host's port 53 among frames a client received: [id, dns bytes]. */
function dnsReplies(frames: Buffer[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const f of frames) {
    if (f.length < 42 + 12 || f.readUInt16BE(12) !== 0x0800 || f[23] !== 17) continue;
    const ihl = (f[14] & 0x0f) * 4;
    if (f.readUInt16BE(14 + ihl) !== 53) continue;
    const dnsOff = 14 + ihl + 8;
    const dnsLen = f.readUInt16BE(14 + ihl + 4) - 8;
    out.push([f.readUInt16BE(dnsOff), dnsLen]);
  }
  return out;
}

/** 70,000 udp datagrams from spoofed 127.1.x.y:port sources (python3 raw socket, IP_HDRINCL). */
function spoofSources(count: number, dstPort: number, hostMac: number): Promise<void> {
  const script = `
import os, socket, struct, sys
count, dport, host = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
dst = socket.inet_aton('127.0.0.1')
for i in range(count):
    src = bytes([127, 1, (i >> 8) & 0xff, i & 0xff])
    sport = 20000 + (i % 40000)
    mac = bytearray(os.urandom(6)); mac[0] = (mac[0] & 0xfc) | 2
    frame = host.to_bytes(6, 'big') + bytes(mac) + b'\\x88\\xb5' + bytes(46)
    udp = struct.pack('!HHHH', sport, dport, 8 + len(frame), 0) + frame
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), i & 0xffff, 0, 64, 17, 0, src, dst)
    try:
        s.sendto(ip + udp, ('127.0.0.1', 0))
    except OSError:
        pass
print('sent', count)
`;
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', script, String(count), String(dstPort), String(hostMac)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`spoofing script exited ${code}: ${err}`))));
  });
}

/** Raw HTTP/1.1 request on a fresh connection; resolves with the status code, or -1 when the connection closed without one. */
function rawHttp(port: number, request: string): Promise<number> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (d) => { data += d; });
    s.on('error', () => {});
    s.on('close', () => { const m = /^HTTP\/1\.[01] (\d{3})/.exec(data); resolve(m ? Number(m[1]) : -1); });
    s.setTimeout(5_000, () => s.destroy());
    s.write(request);
  });
}

/**
 * Opens `count` connections and keeps them (a connection the listener closes at once still
 * counts: it was tried). A unix connect fails with EAGAIN while the listener's backlog is full,
 * so failed connects are tried again, up to 50 rounds in a row without progress.
 */
async function holdConnections(count: number, opts: net.NetConnectOpts): Promise<net.Socket[]> {
  const held: net.Socket[] = [];
  let stalled = 0;
  while (held.length < count && stalled < 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, count - held.length) }, () => connectStream(opts).catch(() => null)));
    let progress = false;
    for (const s of batch) if (s) { s.on('error', () => {}); held.push(s); progress = true; }
    stalled = progress ? 0 : stalled + 1;
    if (!progress) await sleep(20);
  }
  return held;
}

if (inFreshNetns(import.meta.url, 'every hostile neighbour at once against one lanparty (own netns)', 900_000)) {
  after(cleanupAll);
  execFileSync('sysctl', ['-qw', 'net.ipv4.ip_local_port_range=40000 60999']);
  const missing = lanpartyMissing() ?? guestSkipReason();

  test('web, control, DHCP, DNS, spoofed-source and connection floods at once: the LAN still works', { skip: missing, timeout: 840_000 }, async (t) => {
    const dir = tempDir('hostile-all');
    const lp = await startSelf({
      ports: [`udp://127.0.0.1:${UDP_PORT}`, `unixgram://${dir}/dgram.sock`, `tcp://127.0.0.1:${TCP_PORT}`, `unix://${dir}/stream.sock`],
      extraArgs: ['--web', '127.0.0.1:0'],
    });
    const held: net.Socket[] = [];
    const clients: UdpClient[] = [];
    t.after(() => { for (const s of held) s.destroy(); for (const c of clients) c.close(); });
    const first = await status(lp);
    const pid = first.pid;
    const hostMac = parseMac(first.services.lan!.hostMac);
    const webUrl = new URL(lp.output.map((l) => /(http:\/\/127\.0\.0\.1:\d+\/\S*)/.exec(l)?.[1]).find(Boolean)!);
    const webPort = Number(webUrl.port);
    const token = webUrl.searchParams.get('token')!;
    t.diagnostic(`lanparty pid ${pid}, web view on port ${webPort}, RSS at start ${rssKiB(pid)} KiB`);

    let peakKiB = rssKiB(pid);
    const sampler = setInterval(() => { peakKiB = Math.max(peakKiB, rssKiB(pid)); }, 100);
    t.after(() => clearInterval(sampler));

    // The web view: requests that once threw inside the handler, oversized headers, idle connections.
    const web = async () => {
      const codes: number[] = [];
      for (let i = 0; i < 20; i++) {
        codes.push(await rawHttp(webPort, 'GET // HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'));
        codes.push(await rawHttp(webPort, `GET /?token=%zz HTTP/1.1\r\nHost: 127.0.0.1:${webPort}\r\nCookie: lanparty_token=%\r\nConnection: close\r\n\r\n`));
        codes.push(await rawHttp(webPort, `GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Junk: ${'a'.repeat(20_000)}\r\n\r\n`));
      }
      held.push(...await holdConnections(400, { host: '127.0.0.1', port: webPort }));
      t.diagnostic(`web: status codes of the odd requests: ${[...new Set(codes)].join(',')}`);
    };
    // The control socket: junk lines, one 16 MiB line, idle connections.
    const control = async () => {
      for (let i = 0; i < 20; i++) {
        const s = await connectStream({ path: lp.controlPath }).catch(() => null);
        if (!s) continue;
        s.on('error', () => {});
        s.write(Buffer.concat([Buffer.from('{"cmd":'), Buffer.alloc(100, 0xff), Buffer.from('\n\u0000\n{}\n[1,2]\n"x"\n')]));
        held.push(s);
      }
      const big = await connectStream({ path: lp.controlPath });
      big.on('error', () => {});
      await new Promise<void>((resolve) => { big.write(Buffer.alloc(16 << 20, 0x61), () => resolve()); big.once('close', () => resolve()); });
      big.destroy();
      held.push(...await holdConnections(400, { path: lp.controlPath }));
    };
    // DHCP: a client-id flood from one udp peer, each DISCOVER from its own MAC (chaddr = source).
    const dhcp = async () => {
      const d = await udpClient(UDP_PORT);
      clients.push(d);
      for (let i = 0; i < 800; i++) {
        await d.send(bigClientIdDiscover(randomMac(), 235)).catch(() => {});
        if (i % 20 === 19) await sleep(2);
      }
    };
    // DNS: 300 queries of 251 questions each during the attack. UDP under this flood loses some
    // (the client-id DISCOVERs are broadcasts, so they fill this client's socket too); every reply
    // that does come back is checked. Plain queries go after the attack and must all be answered.
    const queries = new Map<number, number>();
    let q: UdpClient;
    const qMac = randomMac();
    const qIp = parseIpv4Address('10.77.0.250');
    const sendQuery = (id: number, more: number) => {
      const payload = dnsQuery(id, more);
      queries.set(id, payload.length);
      return q.send(udpFrame(hostMac, qMac, qIp, HOST_IP, 40000 + (id % 100), 53, payload)).catch(() => {});
    };
    const dns = async () => {
      q = await udpClient(UDP_PORT);
      clients.push(q);
      for (let i = 0; i < 300; i++) {
        await sendQuery(0x1000 + i, 250);
        if (i % 10 === 9) await sleep(5);
      }
    };
    const streams = async () => {
      held.push(...await holdConnections(2000, { host: '127.0.0.1', port: TCP_PORT }));
      held.push(...await holdConnections(1100, { path: path.join(dir, 'stream.sock') }));
    };
    const started = Date.now();
    const timed = (name: string, p: Promise<unknown>) => p.then(() => t.diagnostic(`${name} done after ${Date.now() - started} ms`));
    await Promise.all([timed('web', web()), timed('control', control()), timed('dhcp', dhcp()), timed('dns', dns()), timed('streams', streams()),
      timed('spoofed sources', spoofSources(SPOOFED_SOURCES, UDP_PORT, hostMac))]);
    t.diagnostic(`attack done in ${Date.now() - started} ms; ${held.length} connections held open; peak RSS so far ${peakKiB} KiB`);

    // DNS: plain queries after the attack all answered; no reply to the attack's queries larger
    // than the query.
    const plainIds = Array.from({ length: 30 }, (_, i) => 0x2000 + i);
    const answeredIds = () => new Set(dnsReplies(q!.received).map(([id]) => id));
    await waitFor('answers to 30 plain DNS queries after the attack', async () => {
      const got = answeredIds();
      const missing = plainIds.filter((id) => !got.has(id));
      for (const id of missing) await sendQuery(id, 0);
      return missing.length === 0;
    }, 20_000, 500).catch(async (err: Error) => {
      const s = await status(lp) as unknown as { services: { lan: { dns: unknown } }; ports: Array<{ kind: string; endpoint: string; txFrames: number; drops: unknown }> };
      const qRow = s.ports.find((p) => p.endpoint.endsWith(`:${q!.port}`));
      throw new Error(`${err.message}: ${plainIds.filter((id) => answeredIds().has(id)).length} of 30 answered; DNS ${JSON.stringify(s.services.lan.dns)}; the client's port ${JSON.stringify(qRow) ?? 'gone'}`);
    });
    const replies = dnsReplies(q!.received);
    let replyBytes = 0;
    let queryBytes = 0;
    for (const [id, size] of replies) {
      const sent = queries.get(id);
      assert.ok(sent !== undefined, `a DNS reply with an id (${id}) nobody asked for`);
      // A plain query's answer carries one A record more than the question; a query of many
      // questions is the amplification attack, and its reply must not be larger than it.
      if (sent > PLAIN_QUERY_MAX) assert.ok(size <= sent, `DNS reply to query ${id} is ${size} bytes, its query ${sent}: amplification`);
      else assert.ok(size <= 512, `DNS reply to plain query ${id} is ${size} bytes`);
      replyBytes += size;
    }
    for (const v of queries.values()) queryBytes += v;
    const attackReplies = replies.filter(([id]) => queries.get(id)! > PLAIN_QUERY_MAX).length;
    assert.ok(attackReplies > 0, 'some of the many-question queries were answered (FORMERR), so their sizes were checked');
    t.diagnostic(`DNS: ${queries.size} queries (${queryBytes} B), ${replies.length} replies (${replyBytes} B)`);
    assert.ok(replyBytes <= queryBytes, `DNS replies (${replyBytes} B) outweigh the queries (${queryBytes} B)`);

    // Still alive, still answering on the web view and the control socket.
    const s1 = await status(lp);
    assert.equal(s1.pid, pid, 'same process');
    const good = await rawHttp(webPort, `GET /api/status?token=${token} HTTP/1.1\r\nHost: 127.0.0.1:${webPort}\r\nConnection: close\r\n\r\n`);
    assert.equal(good, 200, `the web view still serves a good request (got ${good})`);
    const udpPorts = s1.ports.filter((p) => p.kind === 'udp').length;
    // Each attack met its limit and was counted where status says.
    const full = s1 as unknown as {
      control: { overlongRequests: number; badRequests: number };
      web: { badRequests: number };
      transports: Array<{ kind: string; refusedConnections?: number; peers?: { refused: number; evicted: number } }>;
      services: { lan: { dhcp: { counters: { drops: Record<string, number> } } } };
    };
    t.diagnostic(`control ${JSON.stringify(full.control)}; web ${JSON.stringify(full.web)}; DHCP drops ${JSON.stringify(full.services.lan.dhcp.counters.drops)}`);
    t.diagnostic(`transports ${JSON.stringify(full.transports.map((x) => ({ kind: x.kind, refusedConnections: x.refusedConnections, peers: x.peers })))}`);
    assert.ok(full.control.overlongRequests >= 1, 'the 16 MiB control line was cut off and counted');
    assert.ok(full.control.badRequests >= 20, 'the junk control lines were counted');
    assert.ok(full.web.badRequests >= 20, 'the odd web requests were counted');
    for (const kind of ['tcp', 'unix']) {
      const tr = full.transports.find((x) => x.kind === kind)!;
      assert.ok((tr.refusedConnections ?? 0) > 0, `the ${kind} listener refused connections past its limit`);
    }
    const udpTr = full.transports.find((x) => x.kind === 'udp')!;
    assert.ok(udpTr.peers!.refused + udpTr.peers!.evicted > 0, 'spoofed sources met the udp port\'s peer limit');
    assert.ok(full.services.lan.dhcp.counters.drops['option-too-long'] > 0, 'DISCOVERs with ~60 KB client ids were dropped as option-too-long');
    t.diagnostic(`after the attack: ${udpPorts} udp peer ports, table ${JSON.stringify(s1.switch.table)}, memory ${JSON.stringify(s1.memory)}`);

    // Two guests talk; a third joins by DHCP. The connection floods are still held open.
    const guestDir = tempDir('hostile-all-guests');
    const udpNetdev = (n: number) => `dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${GUEST_UDP_BASE + n},remote.type=inet,remote.host=127.0.0.1,remote.port=${UDP_PORT}`;
    const [a, b, c] = await Promise.all([
      startGuest({ ns: selfNs(), name: 'a', mac: macForGuest(11), netdevArgs: [udpNetdev(11)], cmdline: { ip: '10.77.0.211/24', ping: ['10.77.0.212'], deadline: 120, wait: 30 }, timeoutMs: 240_000 }),
      startGuest({ ns: selfNs(), name: 'b', mac: macForGuest(12), netdevArgs: [`dgram,id=n0,local.type=unix,local.path=${guestDir}/b.sock,remote.type=unix,remote.path=${dir}/dgram.sock`], cmdline: { ip: '10.77.0.212/24', ping: ['10.77.0.211'], deadline: 120, wait: 30 }, timeoutMs: 240_000 }),
      startGuest({ ns: selfNs(), name: 'c', mac: macForGuest(13), netdevArgs: [udpNetdev(13)], cmdline: { dhcp: 1, ping: ['10.77.0.1'], deadline: 120 }, timeoutMs: 240_000 }),
    ]);
    const [ra, rb, rc] = await Promise.all([a.result(), b.result(), c.result()]);
    for (const [g, r] of [[a, ra], [b, rb], [c, rc]] as const) {
      t.diagnostic(summarize(g.name, r));
      assert.equal(r.done, 'ok', `guest ${g.name}: ${summarize(g.name, r)}`);
    }
    const lease = rc.results.find((r) => r.kind === 'dhcp');
    t.diagnostic(`guest c's lease: ${JSON.stringify(lease)}`);

    peakKiB = Math.max(peakKiB, rssKiB(pid));
    clearInterval(sampler);
    t.diagnostic(`peak RSS ${(peakKiB / 1024).toFixed(1)} MiB (bound ${MEMORY_BOUND_MIB} MiB)`);
    assert.ok(peakKiB < MEMORY_BOUND_MIB * 1024, `lanparty grew to ${(peakKiB / 1024).toFixed(1)} MiB, over ${MEMORY_BOUND_MIB} MiB`);
    assert.equal((await status(lp)).pid, pid, 'same process at the end');
    for (const s of held) s.destroy();
    held.length = 0;
    assert.equal(await lp.stop(), 0, 'clean exit on SIGINT');
  });
}
