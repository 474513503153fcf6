/*
 * Restart lanparty with guests attached on every transport: each comes back, or lanparty itself
 * says why this QEMU version cannot (and what to do instead).
 *
 *   netns lp<pid>-N-restart  (lo up; everything on 127.0.0.1 or in a temp dir)
 *   ┌─────────────────────────────────────────────────────────────────────────────────────────┐
 *   │  g31 10.0.0.31  mcast 230.0.0.1:33000 ───────────┐                                      │
 *   │  g32 10.0.0.32  udp   :34032 -> :33001 ──────────┤   lanparty #1 ──SIGKILL──┐           │
 *   │  g33 10.0.0.33  unixgram g33.sock -> dgram.sock ─┼── (also mcast            ├ leases.json│
 *   │  g34 10.0.0.34  stream server=on :5589 <─connect─┤    230.0.0.2:33010,      │ same ports │
 *   │  g35 10.0.0.35  stream server=off ──> :33002 ────┤    nobody else there)    │           │
 *   │  g36 10.0.0.36  udp via lanparty qemu -> :33001 ─┘   (its socket, fd 3)     │           │
 *   │                                                      lanparty #2 ───────────┘           │
 *   └─────────────────────────────────────────────────────────────────────────────────────────┘
 *   Every guest runs lp.pingloop: once a second, one ping to each of the five others, one
 *   LP-TICK line (timestamped here on arrival).
 *
 *   g36 is started by `lanparty qemu`, which makes its udp socket (connected to lanparty's port)
 *   and passes it to QEMU: QEMU 7.2 ignores the failed recv() and send() of a connected socket
 *   while nobody is bound at the other end, so it comes back too.
 *
 *   1. g31..g34 boot, lanparty #1 starts (connects to g34), then g35 (a QEMU 7.2 stream client
 *      needs a listener) and g36 (the launcher asks lanparty for its ports). Wait until every
 *      guest has had a tick reaching all five others.
 *   2. SIGKILL lanparty #1 (a crash: the kernel closes its sockets), wait, start lanparty #2 with
 *      the same ports and lease file.
 *   3. Within ~10 s of #2's "ready", g31..g34 and g36 (mcast, udp, unixgram, tcp+connect, udp
 *      through the launcher's socket) reach each other
 *      again. g35 never does: QEMU 7.2 stream clients do not reconnect
 *      (docs/qemu-transports.md §5),
 *      and lanparty's `up` output says so next to the tcp listener ("... it cannot reconnect").
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanupAll, netnsSkipReason, Netns, tempDir } from '../../lab/netns.js';
import { buildGuest, guestSkipReason, macForGuest, qemuVersion, startGuest, summaryLines, type Guest, type GuestResult } from '../../lab/guest.js';
import { attach, guestIp, type LanMember, type TransportKind } from '../../lab/guest-lan.js';
import { lanpartyMissing, startLanparty, type Lanparty } from '../../lab/netns-lanparty.js';
import { launch } from '../../lab/launcher.js';

const skip = netnsSkipReason() ?? guestSkipReason();

/** Seconds each guest's ping loop runs: boot spread + phase 1 + outage + 20 s after the restart. */
const LOOP_S = 60;
/** After lanparty #2's "ready", reconnecting guests must reach each other within this. */
const RECOVERY_LIMIT_MS = 10_000;
/** How long the ping loops are watched after "ready". */
const WATCH_AFTER_READY_MS = 20_000;
/** Ticks that reach the host this long after the kill may still report pings sent before it. */
const IN_FLIGHT_MS = 3_000;
/** Extra group: only lanparty joins it, so its frames to the guest's group never loop back. */
const SPARE_MCAST_PORT = 'mcast://230.0.0.2:33010?localaddr=127.0.0.1&ttl=1';

const KINDS: Array<[TransportKind, number]> = [['mcast', 31], ['udp', 32], ['unixgram', 33], ['tcp+connect', 34], ['tcp', 35]];
/** The guest `lanparty qemu` starts on the udp port (its socket made by the launcher). */
const LAUNCHED = 36;
/** Transports whose guests come back after a lanparty restart with QEMU 7.2. */
const RECONNECTS = new Set<TransportKind>(['mcast', 'udp', 'unixgram', 'tcp+connect']);

interface Tick {
  t: number;
  /** Host time (ms) the line arrived. */
  at: number;
  ok: Map<string, boolean>;
  line: string;
}

after(cleanupAll);
before(async () => {
  if (!skip) await buildGuest();
});

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

test('lanparty restart: guests on mcast, udp (QEMU\'s socket or the launcher\'s), unixgram, tcp+connect come back; a QEMU 7.2 tcp client cannot, and lanparty says so', { skip, timeout: 420_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  t.diagnostic(qemuVersion());
  const ns = await Netns.create('restart');
  const dir = tempDir('restart');
  const leaseFile = join(dir, 'leases.json');
  const members: Array<LanMember & { kind: TransportKind; launched?: boolean }> = KINDS.map(([kind, n]) => ({
    kind,
    name: `g${n}`,
    n,
    attachment: attach(kind, n, dir, '230.0.0.1:33000'),
  }));
  members.push({ kind: 'udp', name: `g${LAUNCHED}`, n: LAUNCHED, attachment: attach('udp', LAUNCHED, dir), launched: true });
  const ports = [...new Set([...members.flatMap((m) => m.attachment.ports), SPARE_MCAST_PORT])];

  const guests = new Map<string, Guest>();
  const stamps = new Map<string, number[]>(); // host arrival time of every console line
  const stamper = setInterval(() => {
    const now = Date.now();
    for (const [name, g] of guests) {
      const s = stamps.get(name)!;
      while (s.length < g.lines.length) s.push(now);
    }
  }, 50);
  const ticks = (name: string): Tick[] => {
    const g = guests.get(name)!;
    const s = stamps.get(name)!;
    const out: Tick[] = [];
    for (let i = 0; i < s.length; i++) {
      const m = /LP-TICK t=(\d+)((?: \S+=(?:ok|fail))*)/.exec(g.lines[i]);
      if (!m) continue;
      const ok = new Map<string, boolean>();
      for (const w of m[2].trim().split(/\s+/)) {
        const [ip, r] = w.split('=');
        ok.set(ip, r === 'ok');
      }
      out.push({ t: Number(m[1]), at: s[i], ok, line: m[0] });
    }
    return out;
  };
  let lp1: Lanparty | undefined;
  let lp2: Lanparty | undefined;
  let launcherSaid: string[] = [];
  const start = async (m: LanMember & { launched?: boolean }) => {
    const cmdline = { ip: `${guestIp(m.n)}/24`, pingloop: `${members.filter((o) => o !== m).map((o) => guestIp(o.n)).join(',')}:${LOOP_S}`, wait: 5 };
    if (m.launched) {
      const l = await launch({ ns, name: m.name, control: lp1!.controlPath, launcherArgs: ['--transport', 'udp'], cmdline });
      launcherSaid = l.stderr;
      stamps.set(m.name, []);
      guests.set(m.name, {
        name: m.name,
        lines: l.lines,
        result: async () => {
          const r = await l.done(360_000);
          const ok = r.done === 'ok';
          return { done: ok ? 'ok' : 'fail', reason: ok ? '' : r.done, lines: l.lines, results: r.results, bootMs: NaN, doneMs: NaN };
        },
        exited: () => l.exited(),
        kill: () => l.signal('SIGTERM'), // the launcher passes it to QEMU
      });
      return;
    }
    const g = await startGuest({
      ns,
      name: m.name,
      mac: macForGuest(m.n),
      netdevArgs: [m.attachment.netdev],
      cmdline,
      timeoutMs: 360_000,
    });
    stamps.set(m.name, []);
    guests.set(m.name, g);
  };

  try {
    // 1. Stream servers and datagram guests first, then lanparty #1, then the 7.2 stream client.
    const early = members.filter((m) => !m.attachment.needsListeningLanparty && !m.launched);
    await Promise.all(early.map(start));
    for (const m of early) if (m.attachment.serverPort !== undefined) await ns.waitListening('tcp', m.attachment.serverPort, 60_000);
    lp1 = await startLanparty({ ns, ports, leaseFile, label: 'lanparty#1' });
    await Promise.all(members.filter((m) => m.attachment.needsListeningLanparty || m.launched).map(start));
    const allOk = (m: LanMember, tk: Tick) => members.every((o) => o === m || tk.ok.get(guestIp(o.n)) === true);
    await until('every guest to reach all five others once', () => members.every((m) => ticks(m.name).some((tk) => allOk(m, tk))), 180_000);
    for (const m of members) {
      const first = ticks(m.name).find((tk) => allOk(m, tk))!;
      t.diagnostic(`before: ${m.name} (${m.kind}) first reached everyone at loop t=${first.t}: ${first.line}`);
    }
    t.diagnostic(`g${LAUNCHED}'s launcher: ${launcherSaid.join(' | ')}`);
    assert.match(launcherSaid.join('\n'), new RegExp(`g${LAUNCHED} receives on a socket lanparty made`), 'the launcher made the udp socket');
    await sleep(3_000);

    // 2. Crash and restart.
    const killAt = Date.now();
    await lp1.kill();
    t.diagnostic(`lanparty #1 SIGKILLed; exit ${await lp1.exited()}`);
    await sleep(3_000);
    lp2 = await startLanparty({ ns, ports, leaseFile, label: 'lanparty#2' });
    const readyAt = Date.now();
    t.diagnostic(`lanparty #2 ready ${readyAt - killAt} ms after the kill`);
    await until(`${WATCH_AFTER_READY_MS} ms of ticks after the restart`, () => Date.now() > readyAt + WATCH_AFTER_READY_MS, WATCH_AFTER_READY_MS + 5_000);
    for (const m of members) {
      const last = ticks(m.name).at(-1);
      assert.ok(last && last.at >= readyAt + WATCH_AFTER_READY_MS - 2_000, `${m.name}'s ping loop still ran ${WATCH_AFTER_READY_MS} ms after the restart (LOOP_S=${LOOP_S} too short?); last tick: ${last?.line}`);
    }

    // 3. Who came back.
    const failures: string[] = [];
    const reconnecting = members.filter((m) => RECONNECTS.has(m.kind));
    const client = members.find((m) => m.kind === 'tcp')!;
    for (const m of reconnecting) {
      const peers = reconnecting.filter((o) => o !== m).map((o) => guestIp(o.n));
      const after = ticks(m.name).filter((tk) => tk.at >= readyAt);
      const back = after.find((tk) => peers.every((ip) => tk.ok.get(ip) === true));
      const outage = ticks(m.name).filter((tk) => tk.at > killAt && tk.at < readyAt);
      if (!back) {
        failures.push(`${m.name} (${m.kind}) never reached ${peers.join(', ')} after the restart; ticks:\n  ${after.map((tk) => tk.line).join('\n  ')}`);
        continue;
      }
      t.diagnostic(`recovery: ${m.kind.padEnd(11)} ${m.name} reached ${peers.join(',')} ${back.at - readyAt} ms after "ready" (${back.at - killAt} ms after the kill; ${outage.filter((tk) => !allOk(m, tk)).length} failing ticks during the outage): ${back.line}`);
      if (back.at - readyAt > RECOVERY_LIMIT_MS) failures.push(`${m.name} (${m.kind}) took ${back.at - readyAt} ms after "ready" to reach ${peers.join(', ')} (limit ${RECOVERY_LIMIT_MS})`);
      // Still there later, not a fluke.
      const lastTick = after.at(-1)!;
      if (!peers.every((ip) => lastTick.ok.get(ip) === true)) failures.push(`${m.name} (${m.kind}) lost its peers again: ${lastTick.line}`);
      // Nobody reaches the dead 7.2 stream client once lanparty #1 is gone. A tick's line reports
      // pings sent up to 2 s (-W 1) before it reaches the host, later still when six TCG guests
      // share two loaded CPUs: IN_FLIGHT_MS covers lines about pings sent before the kill.
      const reached = ticks(m.name).filter((tk) => tk.at > killAt + IN_FLIGHT_MS && tk.ok.get(guestIp(client.n)) === true);
      if (reached.length > 0) failures.push(`${m.name} reached ${client.name} (tcp client) after the kill: ${reached[0].line}`);
    }
    const clientAfter = ticks(client.name).filter((tk) => tk.at > killAt + IN_FLIGHT_MS);
    const clientOk = clientAfter.filter((tk) => [...tk.ok.values()].some(Boolean));
    t.diagnostic(`recovery: tcp         ${client.name} (QEMU stream client, server=off): ${clientOk.length} of ${clientAfter.length} ticks after the kill reached anyone; last: ${clientAfter.at(-1)?.line}`);
    if (clientOk.length > 0) failures.push(`${client.name} (tcp client) reached a peer after the kill, which QEMU 7.2 can't do; is this QEMU newer? ${clientOk[0].line}`);

    // What lanparty itself tells the user, both times.
    for (const lp of [lp1, lp2]) {
      const note = lp.output.find((l) => l.includes('cannot reconnect'));
      const connectNote = lp.output.find((l) => l.includes('reconnects when it restarts'));
      t.diagnostic(`lanparty says: ${note?.trim()} | ${connectNote?.trim()}`);
      if (!note) failures.push(`lanparty's up output has no "cannot reconnect" note:\n${lp.output.join('\n')}`);
      if (!connectNote) failures.push(`lanparty's up output has no "reconnects when it restarts" note for tcp+connect:\n${lp.output.join('\n')}`);
    }
    // The note sits under the tcp listener, not under another port.
    const out2 = lp2.output;
    const tcpAt = out2.findIndex((l) => l.includes('tcp://127.0.0.1:33002'));
    const noteAt = out2.findIndex((l) => l.includes('cannot reconnect'));
    if (!(tcpAt >= 0 && noteAt > tcpAt && !out2.slice(tcpAt + 1, noteAt).some((l) => /^\s{2}\S+:\/\//.test(l)))) failures.push(`the "cannot reconnect" note is not under the tcp://127.0.0.1:33002 port:\n${out2.join('\n')}`);

    // 4. The loops finish: LP-RESULT pingloop per target, LP-DONE.
    const results = new Map<string, GuestResult>();
    for (const m of members) results.set(m.name, await guests.get(m.name)!.result());
    for (const m of members) {
      const r = results.get(m.name)!;
      for (const line of summaryLines(m.name, r)) t.diagnostic(line);
      for (const o of members) {
        if (o === m) continue;
        const p = r.results.find((x) => x.kind === 'pingloop' && x.target === guestIp(o.n));
        const want = RECONNECTS.has(m.kind) && RECONNECTS.has(o.kind);
        if (p?.ok !== want) failures.push(`${m.name}: LP-RESULT pingloop ${guestIp(o.n)} should be ${want ? 'ok' : 'fail'}: ${p?.line}`);
      }
    }
    assert.deepEqual(failures, [], failures.join('\n'));
    assert.equal(await lp2.stop(), 0, `lanparty #2 exit code after SIGINT; output:\n${lp2.output.join('\n')}`);
  } finally {
    clearInterval(stamper);
    for (const g of guests.values()) g.kill();
    await Promise.all([...guests.values()].map((g) => g.exited()));
    await lp2?.stop();
    await lp1?.kill();
    await ns.destroy();
  }
});
