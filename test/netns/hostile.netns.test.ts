/**
 * Hostile peers and users against a real `lanparty up`, in a network namespace of its own:
 *
 *   netns (unshare --net), lo only
 *   ┌──────────────────────────────────────────────────────────────────────────────┐
 *   │ udp clients  ─ garbage, runts, empties, oversize, random/group/spoofed MACs ─┐│
 *   │ unixgram cl. ─ the same at line rate ────────────────────────────────────────┤│ lanparty up
 *   │ tcp / unix   ─ framed garbage, bad lengths, half frames then gone ───────────┤│ (child process,
 *   │ user nobody  ─ connect(control.sock) ────────────────────────────────────────┘│  mac_table_size 256)
 *   └──────────────────────────────────────────────────────────────────────────────┘
 *
 * Asserts: exact drop counters for a paced set of bad datagrams; the MAC table learns only valid
 * unicast sources and never exceeds its capacity under a random-MAC flood; the process survives
 * (same pid) and still serves DHCP afterwards; the control socket refuses another user (EACCES);
 * with default settings nothing listens beyond loopback and the multicast group.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openBatchSocket } from '../../src/io/index.js';
import { inFreshNetns } from '../helpers/self-netns.js';
import { cleanupAll, tempDir, waitFor } from '../../lab/netns.js';
import { lanpartyMissing } from '../../lab/netns-lanparty.js';
import { DHCPDISCOVER, DHCPOFFER, emitDhcp, emptyDhcpRepr, parseDhcp } from '../../src/wire/dhcp.js';
import { BROADCAST_MAC, parseMac } from '../../src/wire/ethernet.js';
import { IPV4_BROADCAST } from '../../src/wire/ipv4.js';
import { udpFrame } from '../../fuzz/seeds.js';
import { connectStream, frameFrom, framed, macText, randomMac, sleep, startSelf, status, udpClient, type StatusJson } from './hostile-lib.js';

const UDP_PORT = 33101;
const TCP_PORT = 33102;
const TABLE = 256;
const MAX_FRAME = 1518;

function dhcpDiscover(mac: number): Buffer {
  const r = emptyDhcpRepr();
  r.chaddr = mac; r.xid = 0xdead0000 + (mac & 0xffff); r.messageType = DHCPDISCOVER;
  return udpFrame(BROADCAST_MAC, mac, 0, IPV4_BROADCAST, 68, 67, emitDhcp(r));
}

function offerFor(frames: Buffer[], mac: number): boolean {
  for (const f of frames) {
    if (f.length < 42 || f.readUInt16BE(12) !== 0x0800 || f.readUInt16BE(36) !== 68) continue;
    try {
      const d = parseDhcp(f, 42, f.length - 42);
      if (d.chaddr === mac && d.messageType === DHCPOFFER) return true;
    } catch { /* not DHCP */ }
  }
  return false;
}

if (inFreshNetns(import.meta.url, 'hostile peers and users against lanparty up (own netns)')) {
  after(cleanupAll);
  // The blast opens thousands of client sockets, and lanparty's default ports (33000-33002, QEMU's
  // example ports) lie in Linux's ephemeral range (32768-60999): a client still closing on local
  // port 33002 once made the defaults test fail with EADDRINUSE. In this namespace of our own,
  // ephemeral ports start above every fixed port the tests use.
  execFileSync('sysctl', ['-qw', 'net.ipv4.ip_local_port_range=40000 60999']);
  const missing = lanpartyMissing();

  test('garbage, spoofed sources and MAC floods over every transport: counters exact, table capped, process intact', { skip: missing, timeout: 240_000 }, async (t) => {
    const dir = tempDir('hostile');
    const lp = await startSelf({
      ports: [`udp://127.0.0.1:${UDP_PORT}`, `unixgram://${dir}/dgram.sock`, `tcp://127.0.0.1:${TCP_PORT}`, `unix://${dir}/stream.sock`],
      extraArgs: ['--mac-table-size', String(TABLE), '--max-frame', String(MAX_FRAME)],
    });
    const first = await status(lp);
    const pid = first.pid;
    const hostMac = parseMac(first.services.lan!.hostMac);

    // 1. A paced, known set of bad datagrams from one udp peer: every one counted once, by reason.
    const a = await udpClient(UDP_PORT);
    // On a failed assertion, close what this test opened so the run can end.
    t.after(() => { a.close(); if (lp.pid) try { process.kill(lp.pid, 'SIGKILL'); } catch { /* gone */ } });
    const unicastSources: number[] = [];
    for (let i = 0; i < 20; i++) await a.send(Buffer.alloc(0));
    for (let i = 0; i < 30; i++) await a.send(Buffer.alloc(1 + (i % 13), 0xa5));
    for (let i = 0; i < 10; i++) await a.send(frameFrom(BROADCAST_MAC, randomMac(), Buffer.alloc(MAX_FRAME)));
    for (let i = 0; i < 50; i++) await a.send(frameFrom(BROADCAST_MAC, randomMac(true)));
    for (let i = 0; i < 100; i++) { const m = randomMac(); unicastSources.push(m); await a.send(frameFrom(BROADCAST_MAC, m)); if (i % 10 === 9) await sleep(5); }
    const s1 = await waitFor('the udp peer port to count 190 frames', async () => {
      const s = await status(lp);
      const p = s.ports.find((x) => x.kind === 'udp' && x.endpoint.endsWith(`:${a.port}`));
      return p && p.rxFrames + p.drops.empty >= 190 ? { s, p } : undefined;
    }, 10_000, 100);
    t.diagnostic(`udp peer port: ${JSON.stringify(s1.p)}`);
    assert.equal(s1.p.drops.empty, 20, '0-byte datagrams');
    assert.equal(s1.p.drops.runt, 30, 'runts (1-13 bytes)');
    assert.equal(s1.p.drops.oversize, 10, `frames over max_frame_bytes ${MAX_FRAME}`);
    const learned = new Set(s1.s.macs.map((m) => m.mac));
    for (const m of unicastSources) assert.ok(learned.has(macText(m)), `unicast source ${macText(m)} learned`);
    for (const m of s1.s.macs) assert.equal(parseInt(m.mac.slice(0, 2), 16) & 1, 0, `group MAC ${m.mac} was learned`);
    // The table's size counts learned entries; the virtual host's pinned MAC is listed but not counted.
    assert.equal(s1.s.switch.table.size, s1.s.macs.filter((m) => !m.pinned).length);

    // 2. Line rate: 6 s of garbage and random-MAC floods over udp and unixgram, then 4 s of broken
    // streams over tcp and unix (run apart: under the datagram flood this test process's own
    // stream connects stall until the flood ends, which would leave the streams untested).
    let stop = Date.now() + 6_000;
    let sentDgrams = 0;
    let badLengthConns = 0;
    let halfFrameConns = 0;
    const blastUdp = async () => {
      const c = await udpClient(UDP_PORT);
      while (Date.now() < stop) {
        const batch: Promise<void>[] = [];
        for (let i = 0; i < 64; i++) {
          const kind = Math.random();
          const b = kind < 0.5 ? frameFrom(randomMac(), randomMac(), Buffer.alloc(Math.floor(Math.random() * 200)))
            : kind < 0.6 ? frameFrom(BROADCAST_MAC, hostMac)          // spoofs the virtual host
              : Buffer.from(Array.from({ length: Math.floor(Math.random() * 1600) }, () => Math.floor(Math.random() * 256)));
          batch.push(c.send(b).catch(() => {}));
        }
        await Promise.all(batch);
        sentDgrams += 64;
      }
      c.close();
    };
    const blastUnixgram = async () => {
      const s = await openBatchSocket({ kind: 'unix', bind: { path: path.join(dir, 'blaster.sock') } });
      const to = s.peerId({ kind: 'unix', path: path.join(dir, 'dgram.sock') });
      s.start(() => {});
      while (Date.now() < stop) {
        for (let i = 0; i < 64; i++) {
          const b = i % 4 === 0 ? Buffer.alloc(i % 14) : frameFrom(randomMac(), randomMac(i % 8 === 1), Buffer.alloc(i * 3));
          s.send(to, b, 0, b.length);
        }
        s.flush();
        sentDgrams += 64;
        await sleep(1);
      }
      s.close();
    };
    const blastStream = async (opts: { port?: number; host?: string; path?: string }) => {
      while (Date.now() < stop) {
        const s = await connectStream(opts as never).catch(() => null);
        if (s === null) { await sleep(10); continue; }
        s.on('error', () => {});
        const parts: Buffer[] = [];
        for (let i = 0; i < 200; i++) parts.push(framed(i % 7 === 0 ? Buffer.alloc(i % 14) : frameFrom(randomMac(), randomMac(), Buffer.alloc(i))));
        if (Math.random() < 0.5) {
          parts.push(Buffer.from('ffffffff', 'hex'), Buffer.alloc(64));
          badLengthConns++;
        } else {
          parts.push(framed(frameFrom(BROADCAST_MAC, randomMac(), Buffer.alloc(400))).subarray(0, 100));
          halfFrameConns++;
        }
        // No wait for the write callback: after a bad length lanparty closes, and the write may never finish.
        s.write(Buffer.concat(parts));
        await sleep(5);
        s.destroy();
      }
    };
    await Promise.all([blastUdp(), blastUdp(), blastUnixgram()]);
    stop = Date.now() + 4_000;
    await Promise.all([blastStream({ host: '127.0.0.1', port: TCP_PORT }), blastStream({ path: path.join(dir, 'stream.sock') })]);
    t.diagnostic(`blast: ${sentDgrams} udp datagrams, ${badLengthConns} stream connections ended by a bad length, ${halfFrameConns} by a half frame`);

    const s2: StatusJson = await waitFor('status after the blast', () => status(lp).catch(() => undefined), 20_000, 200);
    t.diagnostic(`after: table ${JSON.stringify(s2.switch.table)}, switch ${JSON.stringify(s2.switch.counters)}`);
    t.diagnostic(`transports: ${JSON.stringify(s2.transports)}`);
    assert.equal(s2.pid, pid, 'same process');
    assert.ok(s2.switch.table.size <= TABLE, `MAC table ${s2.switch.table.size} within capacity ${TABLE}`);
    assert.ok(s2.switch.table.evicted > 0, 'the flood hit the capacity and evicted its own port\'s oldest MACs');
    for (const m of s2.macs) assert.equal(parseInt(m.mac.slice(0, 2), 16) & 1, 0, `group MAC ${m.mac} was learned`);
    for (const tr of s2.transports) assert.equal(tr.state, 'listening', `${tr.url} still listening`);
    assert.ok(badLengthConns > 10 && halfFrameConns > 10, 'both kinds of broken stream were tried many times');
    await waitFor('every stream connection gone from the port list', async () => (await status(lp)).transports.every((tr) => tr.kind === 'udp' || tr.kind === 'unixgram' || tr.portCount === 0), 10_000, 100);
    const hostRow = s2.macs.find((m) => m.mac === macText(hostMac));
    const servicePort = s2.ports.find((p) => p.kind === 'service')!;
    t.diagnostic(`virtual host MAC ${macText(hostMac)} is on port ${hostRow?.port} (services port ${servicePort.id})`);
    // The virtual host's MAC is pinned: spoofed frames neither move it nor get learned.
    assert.equal(hostRow?.port, servicePort.id, 'the virtual host MAC stays on the services port');
    assert.equal(hostRow?.pinned, true);
    assert.ok(s2.switch.table.pinnedRefused > 0, 'spoofed frames claiming the host MAC were counted');
    // Stream connections that died on a bad length or mid-frame stay counted after they close.
    const retired = (await status(lp)).switch.retired;
    t.diagnostic(`ports gone: ${JSON.stringify(retired)}`);
    assert.ok(retired.drops['bad-length'] > 0 && retired.drops.truncated > 0, 'drops of closed stream connections stay counted');

    // 3. Still serving: a fresh client gets a DHCP OFFER (the spoofed host MAC must not divert it).
    const c = await udpClient(UDP_PORT);
    const mac = randomMac();
    await waitFor('a DHCP OFFER for a fresh client after the blast', async () => { await c.send(dhcpDiscover(mac)); await sleep(200); return offerFor(c.received, mac); }, 15_000, 10);
    c.close();
    a.close();
    assert.equal(await lp.stop(), 0, 'clean exit on SIGINT');
  });

  test('the control socket refuses another user (EACCES as nobody)', { skip: missing, timeout: 60_000 }, async () => {
    const lp = await startSelf({ ports: ['udp://127.0.0.1:33201'] });
    const st = fs.statSync(lp.controlPath);
    assert.equal(st.mode & 0o777, 0o600, 'socket mode 0600');
    // Open the directory so only the socket's own mode stands in the way.
    fs.chmodSync(path.dirname(lp.controlPath), 0o755);
    const script = `require('net').connect(${JSON.stringify(lp.controlPath)}).on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(0)})`;
    const out = await new Promise<string>((resolve, reject) => execFile('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], (err, so, se) => (err ? reject(new Error(`${err.message}\n${se}`)) : resolve(so.trim()))));
    assert.equal(out, 'EACCES');
    assert.equal(await lp.stop(), 0);
  });

  test('with defaults nothing listens beyond loopback and the multicast group (ss -lntu)', { skip: missing, timeout: 60_000 }, async (t) => {
    const dir = tempDir('defaults');
    fs.chmodSync(dir, 0o700);
    // No [[port]]: the default ports. Runtime and state dirs in the temp dir.
    const lp = await startSelf({ ports: [] }, { ...process.env, XDG_RUNTIME_DIR: dir, XDG_STATE_HOME: path.join(dir, 'state') });
    const out = execFileSync('ss', ['-lntuH'], { encoding: 'utf8' });
    t.diagnostic(`ss -lntuH:\n${out}`);
    const locals = out.trim().split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[4]);
    assert.ok(locals.length >= 3, 'udp, tcp and mcast sockets are there');
    for (const a of locals) assert.match(a, /^(127\.0\.0\.1|230\.0\.0\.1):\d+$/, `${a} listens beyond loopback`);
    assert.equal(await lp.stop(), 0);
  });
}
