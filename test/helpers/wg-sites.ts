/**
 * Multi-site WireGuard peer-link tests (test/netns/wg-sites*.netns.test.ts): "sites" are network
 * namespaces, each with one lanparty whose [wg] peers are the other sites, all joined through a
 * router namespace that forwards, NATs (nftables masquerade), drops (nftables: a fixed cut or
 * `numgen random` loss) and delays (a small user-space UDP relay, since the tests do without netem;
 * see docs/test-machine.md).
 *
 *            va 10.50.1.2 ── ra 10.50.1.1 ┐
 *   site a                                 │ router r (ip_forward, nftables table inet lp:
 *            vb 10.50.2.2 ── rb 10.50.2.1 ┤   prerouting → chain loss, forward → chain cut)
 *   site b                                 │
 *            vc 10.50.3.2 ── rc 10.50.3.1 ┘
 *   site c
 *
 * What the test process uses on each site: a `unix://DIR/s.sock` stream port (unix sockets are not
 * namespaced, so a QEMU-stream-format client in this process is a guest on that site's LAN), and
 * optional TAP or multicast ports. Also here: the relay, a UDP sender and a guest on a multicast
 * group (relayed to this process over a unix socket) as small Node scripts run inside a namespace,
 * and a pcap reader for tcpdump's output (replays).
 */
import * as net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { log, Netns, tempDir, vethPair, waitFor } from '../../lab/netns.js';
import { lanpartyStatus, startLanparty, type Lanparty } from '../../lab/netns-lanparty.js';
import { generatePrivateKey, keyText, publicKeyOf } from '../../src/crypto/index.js';
import { StreamFramer } from '../../src/transports/stream/framer.js';

export const WG_PORT = 51820;
export const ETHERTYPE_TEST = 0x88b5; // IEEE local experimental: nothing else on the LAN uses it

// ---------------------------------------------------------------------------------------------
// Topology

export class Site {
  readonly publicKey: Buffer;
  readonly dir: string;
  lp: Lanparty | null = null;
  /** `key`: the WireGuard private key (default: a new one), chosen when a test needs a bridge-id order. */
  constructor(readonly tag: string, readonly n: number, readonly ns: Netns, readonly key: Buffer = generatePrivateKey()) {
    this.publicKey = publicKeyOf(key);
    this.dir = tempDir(`site-${tag}`);
  }
  /** Underlay address on the link to the router. */
  get underlay(): string { return `10.50.${this.n}.2`; }
  /** The router's address on this site's link. */
  get gateway(): string { return `10.50.${this.n}.1`; }
  get tunnel(): string { return `10.99.0.${this.n}`; }
  get endpoint(): string { return `${this.underlay}:${WG_PORT}`; }
  get streamPath(): string { return join(this.dir, 's.sock'); }
  /** The site's test client MAC (QEMU-stream wire format), 02:00:00:00:NN:01. */
  get clientMac(): string { return `02:00:00:00:${this.n.toString(16).padStart(2, '0')}:01`; }
}

export interface Topology {
  router: Netns;
  sites: Site[];
}

/**
 * Creates the router and one namespace per tag (sites numbered 1..n), routed, nftables ready.
 * `keys[i]`, when given, is site i's WireGuard private key.
 */
export async function createTopology(tags: string[], keys: Buffer[] = []): Promise<Topology> {
  const router = await Netns.create('r');
  const sites: Site[] = [];
  for (const [i, tag] of tags.entries()) {
    const ns = await Netns.create(tag);
    const s = new Site(tag, i + 1, ns, keys[i]);
    await vethPair(ns, `v${tag}`, `${s.underlay}/24`, router, `r${tag}`, `${s.gateway}/24`);
    // Roaming tests move the underlay address: keep the route when the old one goes.
    await ns.run(['sysctl', '-qw', `net.ipv4.conf.v${tag}.promote_secondaries=1`]);
    await ns.run(['ip', 'route', 'add', 'default', 'via', s.gateway]);
    sites.push(s);
  }
  await router.run(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  await nft(router, 'add table inet lp');
  await nft(router, 'add chain inet lp loss { type filter hook prerouting priority -150; policy accept; }');
  await nft(router, 'add chain inet lp cut { type filter hook forward priority 0; policy accept; }');
  return { router, sites };
}

/** Runs one nft command (echoed). */
export function nft(ns: Netns, command: string): Promise<unknown> {
  return ns.run(['nft', command]);
}

/** Drops forwarded packets between two sites' underlay addresses (both ways), until `uncut`. */
export async function cut(router: Netns, a: Site, b: Site): Promise<void> {
  await nft(router, `add rule inet lp cut ip saddr ${a.underlay} ip daddr ${b.underlay} counter drop`);
  await nft(router, `add rule inet lp cut ip saddr ${b.underlay} ip daddr ${a.underlay} counter drop`);
}

export async function uncutAll(router: Netns): Promise<void> {
  await nft(router, 'flush chain inet lp cut');
}

/** The `counter` packet totals of the rules in a chain, in rule order. */
export async function chainCounters(ns: Netns, chain: string): Promise<number[]> {
  const { stdout } = await ns.run(['nft', 'list', 'chain', 'inet', 'lp', chain]);
  return [...stdout.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
}

// ---------------------------------------------------------------------------------------------
// lanparty per site

export interface PeerLink {
  site: Site;
  /** "HOST:PORT" to configure, null for none (learned when it connects). Default: its underlay. */
  endpoint?: string | null;
  keepaliveS?: number;
}

export function wgToml(site: Site, peers: PeerLink[], extraPeers: Array<{ publicKey: string; address: string; endpoint: string }> = []): string {
  const lines = ['[wg]', `private_key = "${keyText(site.key)}"`, `listen = "0.0.0.0:${WG_PORT}"`, `address = "${site.tunnel}"`];
  for (const p of peers) {
    const ep = p.endpoint === undefined ? p.site.endpoint : p.endpoint;
    lines.push('', '[[wg.peer]]', `public_key = "${keyText(p.site.publicKey)}"`, `address = "${p.site.tunnel}"`);
    if (ep !== null) lines.push(`endpoint = "${ep}"`);
    if (p.keepaliveS !== undefined) lines.push(`persistent_keepalive = ${p.keepaliveS}`);
  }
  for (const p of extraPeers) lines.push('', '[[wg.peer]]', `public_key = "${p.publicKey}"`, `address = "${p.address}"`, `endpoint = "${p.endpoint}"`);
  return lines.join('\n');
}

/** Starts lanparty on a site: its stream port, optional TAP (or other) ports, [wg] with `peers`; no DHCP. */
export async function startSite(site: Site, peers: PeerLink[], opts: { taps?: string[]; ports?: string[]; ns?: Netns; env?: Record<string, string> } = {}): Promise<Lanparty> {
  site.lp = await startLanparty({
    ns: opts.ns ?? site.ns,
    label: `lanparty ${site.tag}`,
    ports: [`unix://${site.streamPath}`, ...(opts.taps ?? []), ...(opts.ports ?? [])],
    extraArgs: ['--no-dhcp'],
    configToml: wgToml(site, peers),
    env: opts.env,
  });
  return site.lp;
}

export async function stopSites(sites: Site[]): Promise<void> {
  await Promise.all(sites.map(async (s) => {
    if (s.lp) await s.lp.stop();
    s.lp = null;
  }));
}

export interface WgPeerRow {
  publicKey: string; address: string; endpoint: string; lastHandshake: string | null;
  reachable: boolean; role: string; forwarding: boolean; portId: number;
  /** Stock peers: the other bridges claiming it (transports/wg WgPeerStatus). */
  claimedBy?: string[];
  counters: Record<string, number>; inner: Record<string, number>;
}
/** A multicast group in the tree (transports/wg WgSegmentStatus). */
export interface WgSegmentRow { name: string; role: string; forwarding: boolean; bridges: string[]; helloRx: number; heardFull: number }
export interface WgSection { bridgeId: string; rootId: string; rootCost: number; topologyChanges?: number; tcCount?: number; counters: Record<string, number>; peers: WgPeerRow[]; segments: WgSegmentRow[] }
/** The tree fields of an mcast transport row (transports/mcast McastSegmentStatus). */
export interface McastSegment { role: string; forwarding: boolean; bridgesHeard: number; designatedBridge: string; treeRx: number; treeTx: number; treeFiltered: number }
export interface SiteStatus {
  wg: WgSection;
  /** The mcast transports' tree fields (null: no tree), in config order. */
  mcast: Array<McastSegment | null>;
  ports: Array<{ id: number; name: string; kind: string; forwarding: boolean; rxFrames: number; txFrames: number; drops: Record<string, number> }>;
  macs: Array<{ mac: string; port: number; portName: string }>;
}

/** `lanparty status --json` of a site, reduced to what these tests read. */
export async function siteStatus(site: Site): Promise<SiteStatus> {
  const s = await lanpartyStatus<{ transports: Array<{ kind: string; wg?: WgSection; segment?: McastSegment | null }>; ports: SiteStatus['ports']; macs: SiteStatus['macs'] }>(site.lp!);
  const wg = s.transports.find((t) => t.wg !== undefined)?.wg;
  if (wg === undefined) throw new Error(`site ${site.tag}: no wg transport in status`);
  const mcast = s.transports.filter((t) => t.kind === 'mcast').map((t) => t.segment ?? null);
  return { wg, mcast, ports: s.ports, macs: s.macs };
}

/** The status row for `peer` as seen from `site`. */
export function peerRow(st: SiteStatus, peer: Site): WgPeerRow {
  const r = st.wg.peers.find((p) => p.publicKey === keyText(peer.publicKey));
  if (r === undefined) throw new Error(`no peer ${peer.tag} in status`);
  return r;
}

/**
 * Polls until every site's peer links are settled: each has a session and a final role (root,
 * designated or blocked), forwarding exactly when not blocked. Returns the statuses.
 */
export async function waitConverged(sites: Site[], timeoutMs = 20_000, opts: { stockPeers?: boolean } = {}): Promise<Map<Site, SiteStatus>> {
  let last = '';
  try {
    return await waitFor('spanning tree converged on every site', async () => {
      const out = new Map<Site, SiteStatus>();
      for (const s of sites) out.set(s, await siteStatus(s));
      // Roles, plus what a role waits on: the session (reachable, last handshake) and hellos heard.
      last = [...out].map(([s, st]) => `${s.tag}: ${st.wg.peers.map((p) => linkRole(p)
        + `${p.reachable ? '' : ' unreachable'} hs=${p.lastHandshake ?? 'never'} helloRx=${p.counters.helloRx ?? 0}`
        + ` handshakes=${p.counters.handshakes ?? 0} rx=${p.counters.rxBytes ?? 0}B ep=${p.endpoint}`).join(', ')}`
        + ` [device ${Object.entries(st.wg.counters).filter(([, n]) => n !== 0).map(([k, n]) => `${k}=${n}`).join(' ')}]`).join('; ');
      // With `stockPeers`, a peer may also be a stock host: 'edge' (forwarding) or 'edge-blocked' (not).
      const settled = (p: WgPeerRow) => (p.role === 'blocked' || (opts.stockPeers === true && p.role === 'edge-blocked') ? !p.forwarding
        : (p.role === 'root' || p.role === 'designated' || (opts.stockPeers === true && p.role === 'edge')) && p.forwarding);
      const ok = [...out.values()].every((st) => st.wg.peers.every((p) => p.reachable && settled(p)));
      return ok ? out : undefined;
    }, timeoutMs, 250);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen: ${last}`, { cause: err });
  } finally {
    log(`[host] link roles: ${last}`);
  }
}

/** One link's role: "10.99.0.2=root/fwd". */
function linkRole(p: WgPeerRow): string {
  return `${p.address}=${p.role}${p.forwarding ? '/fwd' : ''}`;
}

/** One line per site: "a: 10.99.0.2=root/fwd 10.99.0.3=blocked". */
export function rolesText(statuses: Map<Site, SiteStatus>): string {
  return [...statuses].map(([s, st]) => `${s.tag}: ${st.wg.peers.map(linkRole).join(' ')}`).join('; ');
}

// ---------------------------------------------------------------------------------------------
// QEMU-stream wire-format clients with tagged frames

export interface Reception { tag: string; src: string; atMs: number }

export class FrameClient {
  readonly received: Reception[] = [];
  /** Called with every frame that is not a tagged test frame (a view valid for the call only). */
  onOther: ((b: Buffer, o: number, l: number) => void) | null = null;
  private readonly sock: net.Socket;
  constructor(readonly name: string, readonly mac: string, sock: net.Socket) {
    this.sock = sock;
    const framer = new StreamFramer(69632, (b, o, l) => {
      if (l < 14 + 4 || b.readUInt16BE(o + 12) !== ETHERTYPE_TEST) {
        if (this.onOther !== null) this.onOther(b, o, l);
        return;
      }
      const tag = b.subarray(o + 14, o + l).toString('latin1').replace(/\0+$/, '');
      this.received.push({ tag, src: b.subarray(o + 6, o + 12).toString('hex'), atMs: Date.now() });
    });
    sock.on('data', (d) => framer.push(d));
    sock.on('error', () => {});
  }

  /** Sends one frame with ETHERTYPE_TEST whose payload is `tag` (NUL-padded to 46 bytes). */
  send(dst: string, tag: string): void {
    const f = Buffer.alloc(14 + Math.max(46, tag.length));
    Buffer.from(dst.replace(/:/g, ''), 'hex').copy(f, 0);
    Buffer.from(this.mac.replace(/:/g, ''), 'hex').copy(f, 6);
    f.writeUInt16BE(ETHERTYPE_TEST, 12);
    f.write(tag, 14, 'latin1');
    const h = Buffer.alloc(4);
    h.writeUInt32BE(f.length);
    this.sock.write(Buffer.concat([h, f]));
  }

  /** How many times each tag with `prefix` arrived. */
  counts(prefix: string): Map<string, number> {
    const m = new Map<string, number>();
    for (const r of this.received) if (r.tag.startsWith(prefix)) m.set(r.tag, (m.get(r.tag) ?? 0) + 1);
    return m;
  }

  close(): void { this.sock.destroy(); }
}

/**
 * Connects a QEMU-stream-format client (4-byte big-endian length + frame) to a site's unix port,
 * and waits until the site's lanparty has made it a switch port: 'connect' fires as soon as the
 * connection is queued at the listener, and a frame flooded before lanparty accepts it reaches no
 * port for this client (seen in CI on a loaded machine: the first frame of a test never arrived).
 */
export async function connectClient(site: Site): Promise<FrameClient> {
  type Ports = { ports: Array<{ id: number; kind: string }> };
  const unixPortIds = async (): Promise<number[]> =>
    site.lp ? (await lanpartyStatus<Ports>(site.lp)).ports.filter((p) => p.kind === 'unix').map((p) => p.id) : [];
  const before = Math.max(0, ...(await unixPortIds()));
  const sock = net.connect({ path: site.streamPath });
  const client = await new Promise<FrameClient>((resolve, reject) => {
    sock.once('error', reject);
    sock.once('connect', () => resolve(new FrameClient(site.tag, site.clientMac, sock)));
  });
  if (site.lp) await waitFor(`site ${site.tag}: lanparty's port for the new client`, async () => (await unixPortIds()).some((id) => id > before), 5000, 20);
  return client;
}

export const BROADCAST = 'ff:ff:ff:ff:ff:ff';

/**
 * Sends `prefix-<n>` frames to `dst` every `intervalMs` until stopped; records when each left.
 */
export function ticker(c: FrameClient, dst: string, prefix: string, intervalMs: number): { sentAt: Map<string, number>; stop(): void } {
  const sentAt = new Map<string, number>();
  let n = 0;
  const timer = setInterval(() => {
    const tag = `${prefix}-${n++}`;
    sentAt.set(tag, Date.now());
    c.send(dst, tag);
  }, intervalMs);
  runningTickers.add(timer);
  return { sentAt, stop: () => { clearInterval(timer); runningTickers.delete(timer); } };
}

const runningTickers = new Set<NodeJS.Timeout>();

/** Stops every ticker still running (a test that failed half-way leaves some). */
export function stopAllTickers(): void {
  for (const t of runningTickers) clearInterval(t);
  runningTickers.clear();
}

/** Tags received more than once (should be none) as "tag×count". */
export function duplicates(c: FrameClient, prefix: string): string[] {
  return [...c.counts(prefix)].filter(([, k]) => k > 1).map(([t, k]) => `${t}×${k}`);
}

/**
 * The outage a receiver saw in a ticker's frames: the longest time between consecutive arrivals
 * (ms), and when it ended.
 */
export function longestGap(c: FrameClient, prefix: string): { gapMs: number; endedAtMs: number } {
  const times = c.received.filter((r) => r.tag.startsWith(prefix + '-')).map((r) => r.atMs).sort((a, b) => a - b);
  let gapMs = 0;
  let endedAtMs = 0;
  for (let i = 1; i < times.length; i++) {
    if (times[i] - times[i - 1] > gapMs) { gapMs = times[i] - times[i - 1]; endedAtMs = times[i]; }
  }
  return { gapMs, endedAtMs };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Small programs run inside a namespace

const RELAY_JS = `
// UDP delay relay: datagrams to LISTEN go to UPSTREAM after DELAY ms; replies from UPSTREAM go
// back to the last client after DELAY ms. One client, one upstream: a slow link, nothing more.
import dgram from 'node:dgram';
const [lh, lp, uh, up, delayMs] = process.argv.slice(2);
const front = dgram.createSocket('udp4');
const back = dgram.createSocket('udp4');
let client = null;
let forwarded = 0;
front.on('message', (m, r) => { client = r; forwarded++; setTimeout(() => back.send(m, Number(up), uh), Number(delayMs)); });
back.on('message', (m) => { if (client) { forwarded++; setTimeout(() => front.send(m, client.port, client.address), Number(delayMs)); } });
front.bind(Number(lp), lh, () => back.bind(0, () => console.log('relay ready ' + lh + ':' + lp + ' -> ' + uh + ':' + up + ' delay ' + delayMs + ' ms')));
process.on('SIGTERM', () => { console.log('relay forwarded ' + forwarded); process.exit(0); });
`;

const SENDER_JS = `
// Sends each hex argument as one UDP datagram to HOST:PORT from one ephemeral socket, then exits.
import dgram from 'node:dgram';
const [host, port, ...hex] = process.argv.slice(2);
const s = dgram.createSocket('udp4');
let i = 0;
const next = () => {
  if (i >= hex.length) { console.log('sent ' + hex.length); s.close(); return; }
  s.send(Buffer.from(hex[i++], 'hex'), Number(port), host, next);
};
s.bind(0, next);
`;

const GROUP_CLIENT_JS = `
// A guest on a QEMU multicast group: one UDP socket bound to GROUP:PORT (as QEMU's
// -netdev socket,mcast= binds it), member on LOCALADDR, loop on, TTL 1. Each datagram from anyone
// else is one frame, written to the unix-socket client in QEMU's stream format (4-byte length);
// each frame the client writes goes to the group.
import dgram from 'node:dgram';
import net from 'node:net';
const [group, port, localaddr, path] = process.argv.slice(2);
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
let conn = null;
let rx = 0;
let tx = 0;
s.on('message', (m, r) => {
  if (r.address === localaddr && r.port === Number(port)) return; // our own, looped back
  rx++;
  if (conn) { const h = Buffer.alloc(4); h.writeUInt32BE(m.length); conn.write(Buffer.concat([h, m])); }
});
s.bind(Number(port), group, () => {
  s.addMembership(group, localaddr);
  s.setMulticastInterface(localaddr);
  s.setMulticastLoopback(true);
  s.setMulticastTTL(1);
  const server = net.createServer((c) => {
    conn = c;
    let buf = Buffer.alloc(0);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const n = buf.readUInt32BE(0);
        s.send(Buffer.from(buf.subarray(4, 4 + n)), Number(port), group);
        tx++;
        buf = buf.subarray(4 + n);
      }
    });
    c.on('error', () => {});
  });
  server.listen(path, () => console.log('group client ready on ' + group + ':' + port + ' via ' + localaddr));
});
process.on('SIGTERM', () => { console.log('group client rx ' + rx + ' tx ' + tx); process.exit(0); });
`;

/**
 * A guest on a multicast group inside `ns` (a QEMU-format datagram socket joined to the group),
 * seen from this process as a FrameClient with MAC `mac`. `stop()` ends it.
 */
export async function startGroupClient(ns: Netns, opts: { group: string; port: number; localaddr: string; name: string; mac: string }): Promise<{ client: FrameClient; stop(): void }> {
  const path = join(tempDir('group-client'), 'g.sock');
  const child = ns.spawn([process.execPath, script('group-client.mjs', GROUP_CLIENT_JS), opts.group, String(opts.port), opts.localaddr, path], `group client ${opts.name}`);
  child.stdout!.setEncoding('utf8').on('data', (d: string) => log(`  ${opts.name}| ${d.trim()}`));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => log(`  ${opts.name}| ${d.trim()}`));
  await ns.waitPath(path);
  const sock = net.connect({ path });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.once('connect', () => resolve());
  });
  return { client: new FrameClient(opts.name, opts.mac, sock), stop: () => { sock.destroy(); child.kill('SIGTERM'); } };
}

function script(name: string, text: string): string {
  const dir = tempDir('scripts');
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Starts a delay relay in `ns`: LISTEN → UPSTREAM after `delayMs`, and back. */
export async function startRelay(ns: Netns, listen: string, upstream: string, delayMs: number): Promise<ChildProcess> {
  const [lh, lp] = listen.split(':');
  const [uh, up] = upstream.split(':');
  const child = ns.spawn([process.execPath, script('relay.mjs', RELAY_JS), lh, lp, uh, up, String(delayMs)], 'delay relay');
  child.stdout!.setEncoding('utf8').on('data', (d: string) => log(`  relay| ${d.trim()}`));
  await ns.waitListening('udp', Number(lp));
  return child;
}

/** Sends datagrams (hex) from `ns` to HOST:PORT and waits until they are out. */
export async function sendDatagrams(ns: Netns, to: string, datagrams: Buffer[]): Promise<void> {
  const [h, p] = to.split(':');
  const { stdout } = await ns.run([process.execPath, script('send.mjs', SENDER_JS), h, p, ...datagrams.map((d) => d.toString('hex'))]);
  log(`  sender| ${stdout.trim()}`);
}

// ---------------------------------------------------------------------------------------------
// pcap (tcpdump -w) reading: IPv4/UDP datagrams only

export interface CapturedDatagram { src: string; sport: number; dst: string; dport: number; payload: Buffer }

export function readPcapUdp(path: string): CapturedDatagram[] {
  const b = readFileSync(path);
  if (b.length < 24) return [];
  const magic = b.readUInt32LE(0);
  if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error(`${path}: not a little-endian pcap file`);
  const linkType = b.readUInt32LE(20);
  const out: CapturedDatagram[] = [];
  for (let o = 24; o + 16 <= b.length;) {
    const incl = b.readUInt32LE(o + 8);
    const rec = o + 16;
    o = rec + incl;
    if (o > b.length) break; // a record cut short by the capture's end
    let ip = rec;
    if (linkType === 1) {
      if (b.readUInt16BE(rec + 12) !== 0x0800) continue;
      ip = rec + 14;
    } else if (linkType === 113) { // Linux cooked (tcpdump -i any)
      if (b.readUInt16BE(rec + 14) !== 0x0800) continue;
      ip = rec + 16;
    } else continue;
    if (b[ip] >> 4 !== 4 || b[ip + 9] !== 17 || (b.readUInt16BE(ip + 6) & 0x3fff) !== 0) continue;
    const udp = ip + (b[ip] & 15) * 4;
    const ulen = b.readUInt16BE(udp + 4);
    out.push({
      src: [...b.subarray(ip + 12, ip + 16)].join('.'), dst: [...b.subarray(ip + 16, ip + 20)].join('.'),
      sport: b.readUInt16BE(udp), dport: b.readUInt16BE(udp + 2),
      payload: Buffer.from(b.subarray(udp + 8, Math.min(udp + ulen, o))),
    });
  }
  return out;
}

/** tcpdump in `ns` on `ifname`, packet-buffered into a file; `stop()` ends it and waits. */
export async function startCapture(ns: Netns, ifname: string, filter: string): Promise<{ path: string; stop(): Promise<void> }> {
  const path = join(tempDir('pcap'), `${ifname}.pcap`);
  const child = ns.spawn(['tcpdump', '-n', '-U', '-i', ifname, '-w', path, filter], `tcpdump ${ifname}`);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  await waitFor(`tcpdump listening on ${ifname}`, () => err.includes('listening on'), 10_000);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    path,
    stop: async () => {
      log(`[${ns.name}] kill -INT ${child.pid} (tcpdump)`);
      child.kill('SIGINT');
      await exited;
      log(`  tcpdump| ${err.trim().split('\n').slice(-3).join(' / ')}`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// pcap (tcpdump -w) reading: Ethernet frames

export interface CapturedFrame { atMs: number; frame: Buffer }

/** Every Ethernet frame (link type 1) of a little-endian pcap file, with its capture time. */
export function readPcapFrames(path: string): CapturedFrame[] {
  const b = readFileSync(path);
  if (b.length < 24) return [];
  const magic = b.readUInt32LE(0);
  if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error(`${path}: not a little-endian pcap file`);
  if (b.readUInt32LE(20) !== 1) throw new Error(`${path}: link type ${b.readUInt32LE(20)}, expected Ethernet (1)`);
  const nano = magic === 0xa1b23c4d;
  const out: CapturedFrame[] = [];
  for (let o = 24; o + 16 <= b.length;) {
    const atMs = b.readUInt32LE(o) * 1000 + b.readUInt32LE(o + 4) / (nano ? 1e6 : 1e3);
    const incl = b.readUInt32LE(o + 8);
    const rec = o + 16;
    o = rec + incl;
    if (o > b.length) break;
    out.push({ atMs, frame: Buffer.from(b.subarray(rec, o)) });
  }
  return out;
}

/** The tag of a tagged test frame (FrameClient.send), or null. */
export function frameTag(f: Buffer): string | null {
  if (f.length < 18 || f.readUInt16BE(12) !== ETHERTYPE_TEST) return null;
  return f.subarray(14).toString('latin1').replace(/\0+$/, '');
}
