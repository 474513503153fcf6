/**
 * Soak: lanparty up for LP_SOAK_SECONDS (default 120 s; `npm run soak` runs 1800 s) under mixed
 * real traffic, in a network namespace of its own:
 *
 *   netns (unshare --net), lo only
 *   ┌───────────────────────────────────────────────────────────────────────────────────┐
 *   │ guest g1 (QEMU, dgram udp)      ─┐  boot, DHCP, ping 10.77.0.1, power off, again   │
 *   │ guest g2 (QEMU, dgram unixgram) ─┤                                                  │
 *   │ flood client (udp)              ─┤  random source MACs, ~2000 frames/s              │
 *   │ seq pair A → B (udp, udp)       ─┼─► lanparty up ── services (DHCP, DNS)           │
 *   │ stream clients (tcp, unix)      ─┘  connect, send, vanish mid-frame                 │
 *   └───────────────────────────────────────────────────────────────────────────────────┘
 *
 * Reports (diagnostics, and JSON to $LP_RELIABILITY_OUT/soak-figures.json when set): frames in and
 * out, drops by reason, VmRSS over time, and the JS heap at the end (status.memory), guest runs.
 * Asserts: VmRSS stays under SOAK_RSS_BOUND_MIB once warm (after the first 30 s), B receives each
 * of A's sequence numbers at most once, every transport is listening at the end, every guest run
 * ended LP-DONE ok, and the pid never changed. TAP and WireGuard-style peers are not part of it
 * yet (see RELIABILITY.md).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inFreshNetns } from '../helpers/self-netns.js';
import { cleanupAll, netnsSkipReason, tempDir } from '../helpers/netns.js';
import { lanpartyMissing } from '../helpers/netns-lanparty.js';
import { guestSkipReason, macForGuest, startGuest } from '../helpers/guest.js';
import { attach } from '../helpers/guest-lan.js';
import { connectStream, frameFrom, framed, randomMac, rssKiB, selfNs, sleep, startSelf, status, udpClient } from './hostile-lib.js';

const SECONDS = Number(process.env.LP_SOAK_SECONDS ?? 120);
const SOAK_RSS_BOUND_MIB = Number(process.env.LP_SOAK_RSS_MIB ?? 128);
const WARM_MS = 30_000;
const MAC_A = 0x02000000a00a;
const MAC_B = 0x02000000b00b;

if (inFreshNetns(import.meta.url, `soak: lanparty up for ${SECONDS} s under mixed traffic (own netns)`)) {
  after(cleanupAll);
  const skip = lanpartyMissing() ?? netnsSkipReason() ?? guestSkipReason();

  test(`soak ${SECONDS} s: guests restarting, MAC flood, seq pair, vanishing streams`, { skip, timeout: (SECONDS + 300) * 1000 }, async (t) => {
    const dir = tempDir('soak');
    const lp = await startSelf({ ports: ['udp://127.0.0.1:33001', `unixgram://${dir}/dgram.sock`, 'tcp://127.0.0.1:33002', `unix://${dir}/stream.sock`] });
    const pid = (await status(lp)).pid;
    const started = Date.now();
    const end = started + SECONDS * 1000;
    const running = () => Date.now() < end;

    // Memory: VmRSS every 2 s.
    const rss: Array<{ s: number; kib: number }> = [];
    const sampler = setInterval(() => rss.push({ s: Math.round((Date.now() - started) / 1000), kib: rssKiB(pid) }), 2000);

    // Guests joining, leaving and restarting.
    const guestRuns = { ok: 0, fail: [] as string[] };
    const guestLoop = async (n: number, kind: 'udp' | 'unixgram') => {
      let round = 0;
      while (running()) {
        const g = await startGuest({ ns: selfNs(), name: `g${n}r${round}`, mac: macForGuest(n), netdevArgs: [attach(kind, n, dir).netdev], cmdline: { dhcp: 1, ping: '10.77.0.1', deadline: 60 }, timeoutMs: 150_000 });
        try {
          const r = await g.result();
          if (r.done === 'ok') guestRuns.ok++; else guestRuns.fail.push(`g${n} round ${round}: ${r.reason}`);
        } catch (err) {
          guestRuns.fail.push(`g${n} round ${round}: ${(err as Error).message.split('\n')[0]}`);
        }
        g.kill();
        await g.exited();
        round++;
      }
    };

    // Random-MAC flood.
    let floodFrames = 0;
    const flood = async () => {
      const c = await udpClient(33001);
      while (running()) {
        const batch: Promise<void>[] = [];
        for (let i = 0; i < 20; i++) batch.push(c.send(frameFrom(randomMac(), randomMac(), Buffer.alloc(64))).catch(() => {}));
        await Promise.all(batch);
        floodFrames += 20;
        await sleep(10);
      }
      c.close();
    };

    // Sequence-tagged pair: A sends to B; B must see each number at most once.
    const a = await udpClient(33001);
    const b = await udpClient(33001);
    const seen = new Map<number, number>();
    b.sock.on('message', (m) => {
      if (m.length < 22 || m.readUInt16BE(12) !== 0x88b5 || m.readUInt32BE(14) !== 0x5e9f00d5) return;
      const seq = m.readUInt32BE(18);
      seen.set(seq, (seen.get(seq) ?? 0) + 1);
    });
    let seqSent = 0;
    const pair = async () => {
      while (running()) {
        await b.send(frameFrom(MAC_A, MAC_B));   // keeps B's MAC learned
        for (let i = 0; i < 50; i++) {
          const p = Buffer.alloc(8);
          p.writeUInt32BE(0x5e9f00d5, 0);
          p.writeUInt32BE(seqSent++, 4);
          await a.send(frameFrom(MAC_B, MAC_A, p));
        }
        await sleep(20);
      }
    };

    // Stream clients that connect, send, and vanish mid-frame.
    let streamConns = 0;
    const streams = async () => {
      while (running()) {
        for (const opts of [{ host: '127.0.0.1', port: 33002 }, { path: path.join(dir, 'stream.sock') }]) {
          const s = await connectStream(opts as never).catch(() => null);
          if (s === null) continue;
          s.on('error', () => {});
          s.write(Buffer.concat([framed(frameFrom(0xffffffffffff, randomMac(), Buffer.alloc(100))), framed(frameFrom(randomMac(), randomMac(), Buffer.alloc(300))).subarray(0, 150)]));
          await sleep(20);
          s.destroy();
          streamConns++;
        }
        await sleep(200);
      }
    };

    await Promise.all([guestLoop(1, 'udp'), guestLoop(2, 'unixgram'), flood(), pair(), streams()]);
    clearInterval(sampler);
    await sleep(500);

    const st = await status(lp);
    const totals = { rxFrames: 0, txFrames: 0 };
    const drops: Record<string, number> = {};
    for (const p of st.ports) {
      totals.rxFrames += p.rxFrames;
      totals.txFrames += p.txFrames;
      for (const [k, v] of Object.entries(p.drops)) drops[k] = (drops[k] ?? 0) + v;
    }
    const warm = rss.filter((r) => r.s * 1000 >= WARM_MS && r.kib > 0);
    const maxWarmMiB = Math.max(...warm.map((r) => r.kib)) / 1024;
    const duplicates = [...seen.values()].filter((n) => n > 1).length;
    const figures = {
      seconds: SECONDS, pid, frames: totals, drops, switch: st.switch, services: st.services.lan?.dhcp?.counters.drops ?? {},
      guestRuns: guestRuns.ok, guestFailures: guestRuns.fail, floodFrames, seqSent, seqReceived: seen.size, duplicates, streamConns,
      rssMiB: { first: rss[0]?.kib / 1024, maxWarm: maxWarmMiB, last: rss[rss.length - 1]?.kib / 1024, bound: SOAK_RSS_BOUND_MIB },
      rssSeries: rss,
      heapUsedMiBAtEnd: st.memory.heapUsedBytes / 1048576,
    };
    t.diagnostic(JSON.stringify({ ...figures, rssSeries: undefined }));
    t.diagnostic(`VmRSS over time (s:MiB): ${rss.map((r) => `${r.s}:${(r.kib / 1024).toFixed(0)}`).join(' ')}`);
    if (process.env.LP_RELIABILITY_OUT) fs.writeFileSync(path.join(process.env.LP_RELIABILITY_OUT, 'soak-figures.json'), JSON.stringify(figures, null, 2));

    assert.equal(st.pid, pid, 'the process never restarted');
    assert.ok(maxWarmMiB < SOAK_RSS_BOUND_MIB, `VmRSS ${maxWarmMiB.toFixed(0)} MiB once warm, bound ${SOAK_RSS_BOUND_MIB} MiB`);
    assert.equal(duplicates, 0, 'no frame delivered twice');
    assert.ok(seen.size > 0, 'B received A\'s frames');
    for (const tr of st.transports) assert.equal(tr.state, 'listening', `${tr.url} is up at the end`);
    assert.deepEqual(guestRuns.fail, [], 'every guest run ended LP-DONE ok');
    assert.ok(guestRuns.ok >= 2, `guests ran (${guestRuns.ok} runs)`);
    a.close();
    b.close();
    assert.equal(await lp.stop(), 0);
  });
}
