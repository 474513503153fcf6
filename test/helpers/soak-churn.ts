/**
 * Topology changes for the soak (test/netns/soak.netns.test.ts), which runs in a namespace of its
 * own (test/helpers/self-netns.ts), so commands here run directly, echoed as `[self] ...`:
 *
 *   - A TAP that goes away and comes back: `ip tuntap add` a persistent TAP with the host address
 *     10.77.0.254/24 (kept out of the default DHCP pool), attach lanparty to it (`tap://NAME`),
 *     keep a `ping -D -O -i 0.2` to the virtual host 10.77.0.1 running through it, and delete and
 *     recreate the device every period. Each lifetime of the device is judged by the ping replies
 *     that arrived in it.
 *   - A peer that roams: a second lanparty ("remote site") in a named namespace, joined to the
 *     soak's namespace by a veth, linked to the soak's lanparty with a [wg] peer link. Every period
 *     the remote's underlay address moves (add the next address, delete the old one; with
 *     promote_secondaries the new one becomes the source of its packets) and a sequence ticker in
 *     both directions through the link measures when traffic resumed.
 *
 *   soak netns (self)                                           netns lp<pid>-N-soak-remote
 *   ┌──────────────────────────────────────────────────┐        ┌──────────────────────────────┐
 *   │ ping → 10.77.0.254 lpsoak0 (TAP) ─┐               │        │                              │
 *   │ link client (udp, MAC ..:c1) ─────┼─ lanparty ── wg 10.60.0.1 ─ veth ─ 10.60.0.(2,3,..) ── │
 *   │                                   │  (soak)      │        │ lanparty (remote) ── unix ── │
 *   │                                   │              │        │   link client (MAC ..:c2)    │
 *   └──────────────────────────────────────────────────┘        └──────────────────────────────┘
 */
import { execFile, execFileSync } from 'node:child_process';
import * as net from 'node:net';
import { join } from 'node:path';
import { log, Netns, registerCleanup, tempDir, waitFor, type CleanupHandle, type RunResult } from '../../lab/netns.js';
import { startLanparty, type Lanparty } from '../../lab/netns-lanparty.js';
import { generatePrivateKey, keyText, publicKeyOf } from '../../src/crypto/index.js';
import { StreamFramer } from '../../src/transports/stream/framer.js';
import { frameFrom, framed, selfNs, sleep, status, udpClient, type StatusJson, type UdpClient } from '../netns/hostile-lib.js';

/** Runs a command in the test's own namespace, echoed; rejects on a non-zero exit. */
export function selfRun(argv: string[]): Promise<RunResult> {
  log(`[self] ${argv.join(' ')}`);
  return new Promise((resolve, reject) => {
    execFile(argv[0], argv.slice(1), (err, stdout, stderr) => {
      if (err) reject(new Error(`[self] ${argv.join(' ')}: ${err.message.trim()}${stderr ? `\n${stderr}` : ''}`, { cause: err }));
      else resolve({ stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// TAP that goes away and comes back

export const TAP_NAME = 'lpsoak0';
export const TAP_HOST_CIDR = '10.77.0.254/24';
export const VIRTUAL_HOST_IP = '10.77.0.1';

let tapCleanup: CleanupHandle | null = null;

/** Creates the persistent TAP with the host address, up. Registered for removal. */
export async function makeTap(): Promise<void> {
  // The namespace dies with the test process anyway; this keeps a reused namespace clean too.
  tapCleanup ??= registerCleanup(`tap ${TAP_NAME}`, () => { try { execFileSync('ip', ['link', 'del', TAP_NAME], { stdio: 'ignore' }); } catch { /* gone */ } });
  await selfRun(['ip', 'tuntap', 'add', 'mode', 'tap', 'name', TAP_NAME]);
  await selfRun(['ip', 'addr', 'add', TAP_HOST_CIDR, 'dev', TAP_NAME]);
  await selfRun(['ip', 'link', 'set', TAP_NAME, 'up']);
}

export interface PingReply { atMs: number; seq: number; dup: boolean }

/** `ping -D -n -O -i 0.2 -W 1 TARGET` kept running; parsed replies with their arrival times. */
export function startPinger(target: string): { replies: PingReply[]; unanswered: number; stop(): void } {
  const child = selfNs().spawn(['ping', '-D', '-n', '-O', '-i', '0.2', '-W', '1', target], `ping ${target}`);
  const state = { replies: [] as PingReply[], unanswered: 0, stop: () => { try { child.kill('SIGINT'); } catch { /* gone */ } } };
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    partial += d;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const m = /^\[(\d+\.\d+)\] \d+ bytes from [\d.]+: icmp_seq=(\d+)/.exec(line);
      if (m) state.replies.push({ atMs: Math.round(Number(m[1]) * 1000), seq: Number(m[2]), dup: line.includes('DUP!') });
      else if (line.includes('no answer yet')) state.unanswered++;
    }
  });
  child.stderr!.resume();
  return state;
}

export interface TapLifetime {
  /** ms since the soak started: when the device was (re)created, when lanparty reported it up again. */
  createdAtS: number;
  reattachMs: number;
  /** Replies from 10.77.0.1 through this device, and the first one after it was created (ms). */
  replies: number;
  firstReplyMs: number | null;
  /** lanparty's external (Buffer) memory once reattached, MiB: each attach allocates a new receive slab. */
  externalMiB: number;
}

export interface TapChurn {
  deletions: number;
  lifetimes: TapLifetime[];
  /** Internal: creation times (epoch ms) and the deletion that ended each lifetime. */
  bounds: Array<{ createdMs: number; endedMs: number }>;
}

/**
 * Deletes the TAP every `periodMs` (the first after `firstMs`), keeps it gone for `goneMs`,
 * recreates it, and waits (bounded) for lanparty's status to show it 'up' again. Stops scheduling
 * when fewer than `quietMs` remain before `endMs`, so the last lifetime has time to carry traffic.
 */
export async function tapChurn(lp: Pick<Lanparty, 'controlPath'>, o: { startedMs: number; endMs: number; firstMs: number; periodMs: number; goneMs: number; quietMs: number }): Promise<TapChurn> {
  const churn: TapChurn = { deletions: 0, lifetimes: [], bounds: [{ createdMs: o.startedMs, endedMs: o.endMs }] };
  churn.lifetimes.push({ createdAtS: 0, reattachMs: 0, replies: 0, firstReplyMs: null, externalMiB: (await status(lp)).memory.externalBytes / 1048576 });
  let next = o.startedMs + o.firstMs;
  for (;;) {
    if (next + o.goneMs + o.quietMs > o.endMs) break;
    await sleep(Math.max(0, next - Date.now()));
    await selfRun(['ip', 'link', 'del', TAP_NAME]);
    churn.deletions++;
    churn.bounds[churn.bounds.length - 1].endedMs = Date.now();
    await sleep(o.goneMs);
    await makeTap();
    const createdMs = Date.now();
    churn.bounds.push({ createdMs, endedMs: o.endMs });
    const st = await waitFor(`lanparty to reattach ${TAP_NAME}`, async () => {
      const x = await status(lp);
      return tapTransport(x)?.state === 'up' ? x : undefined;
    }, 15_000, 250);
    churn.lifetimes.push({ createdAtS: Math.round((createdMs - o.startedMs) / 1000), reattachMs: Date.now() - createdMs, replies: 0, firstReplyMs: null, externalMiB: st.memory.externalBytes / 1048576 });
    next += o.periodMs;
  }
  return churn;
}

/** Fills in each lifetime's replies from the pinger's record. */
export function judgeLifetimes(churn: TapChurn, replies: PingReply[]): void {
  churn.bounds.forEach((b, i) => {
    const inside = replies.filter((r) => !r.dup && r.atMs >= b.createdMs && r.atMs <= b.endedMs);
    churn.lifetimes[i].replies = inside.length;
    churn.lifetimes[i].firstReplyMs = inside.length > 0 ? inside[0].atMs - b.createdMs : null;
  });
}

export function tapTransport(st: StatusJson): { url: string; kind: string; state: string } | undefined {
  return st.transports.find((t) => t.kind === 'tap');
}

// ---------------------------------------------------------------------------------------------
// Roaming wg peer

export const WG_PORT = 51820;
const SELF_IF = 'lpsv0';
const REMOTE_IF = 'lpsr0';
const SELF_UNDERLAY = '10.60.0.1';
const remoteUnderlay = (k: number) => `10.60.0.${2 + (k % 200)}`;
const LINK_MAGIC = 0x5e9f11c0;
/** Test client MACs on each end of the link. */
export const MAC_LINK_LOCAL = 0x0200000011c1;
export const MAC_LINK_REMOTE = 0x0200000011c2;

export interface WgPeerJson {
  publicKey: string; address: string; endpoint: string; reachable: boolean; role: string; forwarding: boolean;
  counters: Record<string, number>;
}

export function wgPeers(st: StatusJson): WgPeerJson[] {
  const t = (st.transports as Array<{ kind: string; wg?: { peers: WgPeerJson[] } }>).find((x) => x.kind === 'wg');
  return t?.wg?.peers ?? [];
}

/** Keys and the soak side's [wg] section; `underlay()` and, once the soak's lanparty runs, `start()` build the remote site. */
export class RemoteSite {
  readonly localKey = generatePrivateKey();
  readonly remoteKey = generatePrivateKey();
  ns: Netns | null = null;
  lp: Lanparty | null = null;
  /** How many times the remote moved; its current underlay address is remoteUnderlay(moves). */
  moves = 0;
  readonly dir = tempDir('soak-remote');

  get streamPath(): string { return join(this.dir, 'r.sock'); }
  get address(): string { return remoteUnderlay(this.moves); }
  get endpoint(): string { return `${this.address}:${WG_PORT}`; }

  /** The soak lanparty's [wg] section (appended to its config). */
  localToml(): string {
    return [
      '[wg]', `private_key = "${keyText(this.localKey)}"`, `listen = "${SELF_UNDERLAY}:${WG_PORT}"`, 'address = "10.99.0.1"',
      '', '[[wg.peer]]', `public_key = "${keyText(publicKeyOf(this.remoteKey))}"`, 'address = "10.99.0.2"', `endpoint = "${this.endpoint}"`,
    ].join('\n');
  }

  /** The namespace and the veth (our end gets SELF_UNDERLAY, which the soak's [wg] listens on). */
  async underlay(): Promise<void> {
    this.ns = await Netns.create('soak-remote');
    await selfRun(['ip', 'link', 'add', SELF_IF, 'type', 'veth', 'peer', 'name', REMOTE_IF, 'netns', this.ns.name]);
    await selfRun(['ip', 'addr', 'add', `${SELF_UNDERLAY}/24`, 'dev', SELF_IF]);
    await selfRun(['ip', 'link', 'set', SELF_IF, 'up']);
    // Roaming deletes the primary address: keep the new (secondary) one and its prefix route.
    await this.ns.run(['sysctl', '-qw', `net.ipv4.conf.${REMOTE_IF}.promote_secondaries=1`]);
    await this.ns.run(['ip', 'addr', 'add', `${this.address}/24`, 'dev', REMOTE_IF]);
    await this.ns.run(['ip', 'link', 'set', REMOTE_IF, 'up']);
    // Not /sys/class/net: that view belongs to the namespace that mounted sysfs, not to ours.
    await waitFor(`${SELF_IF} up`, async () => / UP /.test((await selfRun(['ip', '-br', 'link', 'show', 'dev', SELF_IF])).stdout), 10_000, 100);
  }

  /** The remote lanparty (its own subnet, so its virtual host never answers for ours). */
  async start(): Promise<void> {
    const toml = [
      '[wg]', `private_key = "${keyText(this.remoteKey)}"`, `listen = "0.0.0.0:${WG_PORT}"`, 'address = "10.99.0.2"',
      '', '[[wg.peer]]', `public_key = "${keyText(publicKeyOf(this.localKey))}"`, 'address = "10.99.0.1"', `endpoint = "${SELF_UNDERLAY}:${WG_PORT}"`,
    ].join('\n');
    this.lp = await startLanparty({
      ns: this.ns!, label: 'lanparty remote', ports: [`unix://${this.streamPath}`],
      extraArgs: ['--no-dhcp', '--subnet', '10.78.0.0/24'], configToml: toml,
    });
  }

  /**
   * Moves the remote to its next underlay address. `movedMs` is when the command that deletes the
   * old address was started: from then on the remote may send from the new one. (Taking the time
   * after the command returns would miss the first packets from the new address, sent while
   * `ip netns exec` was still exiting.)
   */
  async roam(): Promise<{ from: string; to: string; movedMs: number }> {
    const from = this.address;
    const to = remoteUnderlay(this.moves + 1);
    await this.ns!.run(['ip', 'addr', 'add', `${to}/24`, 'dev', REMOTE_IF]);
    const movedMs = Date.now();
    await this.ns!.run(['ip', 'addr', 'del', `${from}/24`, 'dev', REMOTE_IF]);
    this.moves++;
    return { from, to, movedMs };
  }

  async stop(): Promise<number | null> {
    const code = this.lp ? await this.lp.stop() : 0;
    this.lp = null;
    await this.ns?.destroy();
    return code;
  }
}

/** Polls the soak lanparty until its one wg peer has a session and forwards. */
export async function waitLinkForwarding(lp: Pick<Lanparty, 'controlPath'>, timeoutMs = 30_000): Promise<WgPeerJson> {
  return waitFor('the wg peer link to forward', async () => {
    const p = wgPeers(await status(lp))[0];
    return p !== undefined && p.reachable && p.forwarding ? p : undefined;
  }, timeoutMs, 250);
}

/** One direction of the link ticker, as the receiver saw it. */
export class LinkReceiver {
  readonly counts = new Map<number, number>();
  readonly arrivals: Array<{ seq: number; atMs: number }> = [];
  constructor(readonly direction: number) {}
  take(b: Buffer, o: number, l: number): void {
    if (l < 23 || b.readUInt16BE(o + 12) !== 0x88b5 || b.readUInt32BE(o + 14) !== LINK_MAGIC || b[o + 18] !== this.direction) return;
    const seq = b.readUInt32BE(o + 19);
    this.counts.set(seq, (this.counts.get(seq) ?? 0) + 1);
    this.arrivals.push({ seq, atMs: Date.now() });
  }
  duplicates(): number {
    let n = 0;
    for (const c of this.counts.values()) if (c > 1) n++;
    return n;
  }
  /** Longest time between consecutive arrivals, ms. */
  maxGapMs(): number {
    let g = 0;
    for (let i = 1; i < this.arrivals.length; i++) g = Math.max(g, this.arrivals[i].atMs - this.arrivals[i - 1].atMs);
    return g;
  }
  /** When the first frame sent after `sinceMs` arrived, or undefined. */
  firstSentAfter(sentAt: number[], sinceMs: number): number | undefined {
    for (const a of this.arrivals) if (sentAt[a.seq] > sinceMs) return a.atMs;
    return undefined;
  }
}

function linkFrame(dst: number, src: number, direction: number, seq: number): Buffer {
  const p = Buffer.alloc(9);
  p.writeUInt32BE(LINK_MAGIC, 0);
  p[4] = direction;
  p.writeUInt32BE(seq, 5);
  return frameFrom(dst, src, p);
}

/**
 * Sequence tickers through the link, both ways, every `intervalMs`: a udp client on the soak's
 * LAN (MAC_LINK_LOCAL) and a QEMU-stream-format client on the remote's unix port (MAC_LINK_REMOTE).
 * Direction 1 goes soak → remote, direction 2 remote → soak.
 */
export async function startLinkTicker(site: RemoteSite, soakUdpPort: number, intervalMs: number) {
  const local: UdpClient = await udpClient(soakUdpPort);
  const sock = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ path: site.streamPath });
    s.once('error', reject);
    s.once('connect', () => resolve(s));
  });
  sock.on('error', () => {});
  const toRemote = new LinkReceiver(1);
  const toLocal = new LinkReceiver(2);
  const framer = new StreamFramer(69632, (b, o, l) => toRemote.take(b, o, l));
  sock.on('data', (d: Buffer) => framer.push(d));
  local.sock.on('message', (m: Buffer) => toLocal.take(m, 0, m.length));
  const sent = { toRemote: [] as number[], toLocal: [] as number[] };
  const timer = setInterval(() => {
    const now = Date.now();
    local.send(linkFrame(MAC_LINK_REMOTE, MAC_LINK_LOCAL, 1, sent.toRemote.length)).catch(() => {});
    sent.toRemote.push(now);
    sock.write(framed(linkFrame(MAC_LINK_LOCAL, MAC_LINK_REMOTE, 2, sent.toLocal.length)));
    sent.toLocal.push(now);
  }, intervalMs);
  // Also on failure: open sockets would keep the test process (and the netns run) alive.
  const c = registerCleanup('link ticker', () => {
    clearInterval(timer);
    local.close();
    sock.destroy();
  });
  return {
    sent, toRemote, toLocal,
    /** ms from `sinceMs` until a frame sent after it had arrived in both directions, or undefined. */
    resumedAfter(sinceMs: number): number | undefined {
      const a = toRemote.firstSentAfter(sent.toRemote, sinceMs);
      const b = toLocal.firstSentAfter(sent.toLocal, sinceMs);
      return a !== undefined && b !== undefined ? Math.max(a, b) - sinceMs : undefined;
    },
    stop(): void {
      c.runNow();
    },
  };
}

export interface Roam { atS: number; from: string; to: string; resumeMs: number | null }

/**
 * Moves the remote every `periodMs` (the first after `firstMs`) and waits up to `boundMs` * 3 for
 * traffic to resume both ways; records the resume time (null: it did not within that wait).
 */
export async function roamLoop(site: RemoteSite, ticker: { resumedAfter(sinceMs: number): number | undefined }, o: { startedMs: number; endMs: number; firstMs: number; periodMs: number; quietMs: number; boundMs: number }): Promise<Roam[]> {
  const roams: Roam[] = [];
  let next = o.startedMs + o.firstMs;
  while (next + o.quietMs <= o.endMs) {
    await sleep(Math.max(0, next - Date.now()));
    const m = await site.roam();
    const r: Roam = { atS: Math.round((m.movedMs - o.startedMs) / 1000), from: m.from, to: m.to, resumeMs: null };
    roams.push(r);
    r.resumeMs = await waitFor(`link traffic after ${m.from} → ${m.to}`, () => ticker.resumedAfter(m.movedMs), o.boundMs * 3, 50).catch(() => null);
    log(`[self] roam ${m.from} → ${m.to}: traffic resumed both ways after ${r.resumeMs ?? 'never'} ms`);
    next += o.periodMs;
  }
  return roams;
}
