/** `lanparty status`: what the running switch sees, for people (default) or scripts (--json). */
import { parseArgs } from 'node:util';
import { request } from '../control/index.js';
import { runtimeDir } from '../config/index.js';
import { checkPrivateDir } from '../util/index.js';
import * as path from 'node:path';
import type { StatusReport } from '../daemon/index.js';

export const STATUS_HELP = `Usage: lanparty status [--json] [--control PATH]

Show ports and their endpoints, per-port counters and rates, drops by reason, the MAC table
(with IPv4 addresses seen) and DHCP leases of the running lanparty.

Options:
      --json          machine-readable output (the control API's status reply)
      --control PATH  control socket (default ${path.join('$XDG_RUNTIME_DIR', 'lanparty', 'control.sock')})
  -h, --help          this help
`;

/** The control socket in the runtime directory, which must be this user's and private (util/private-dir). */
export function defaultControlPath(): string {
  const dir = runtimeDir();
  checkPrivateDir(dir, 'runtime directory');
  return path.join(dir, 'control.sock');
}

function si(n: number, unit: string): string {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + ' G' + unit;
  if (n >= 1e6) return (n / 1e6).toFixed(2) + ' M' + unit;
  if (n >= 1e3) return (n / 1e3).toFixed(1) + ' k' + unit;
  return Math.round(n) + ' ' + unit;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

/** The `wg` field a WireGuard transport adds to its transport row (transports/wg WgStatus). */
interface WgSection {
  listen: string; address: string; vni: number; mtu: number; bridgeId: string; rootId: string; rootCost: number; topologyChanges?: number; underLoad: boolean;
  counters: Record<'rxBadMac1' | 'rxBadMac2' | 'rxRateLimited' | 'rxUnknownIndex' | 'rxHandshakeFailed' | 'rxDecryptFailed' | 'rxBadSize' | 'rxBadType' | 'txCookieReplies', number>;
  peers: Array<{ publicKey: string; address: string; endpoint: string; lastHandshakeAgoS: number | null; rxBytes: number; txBytes: number; reachable: boolean; role: string; forwarding: boolean; claimedBy?: string[]; counters: Record<string, number> }>;
  /** Multicast groups in the tree; optional, so a daemon's status without them still reads. */
  segments?: Array<{ name: string; role: string; forwarding: boolean; bridges: string[]; helloRx: number }>;
}

/** The `vxlan` field a VXLAN transport adds to its transport row (transports/vxlan VxlanStatus). */
interface VxlanSection {
  vni: number;
  underlay: string;
  counters: Record<string, number>;
  vteps: Array<{ address: string; static: boolean; lastRxS: number | null; rxPackets: number; txPackets: number; macs: Array<{ mac: string }> }>;
}

/** ", busy poll 50 µs (...)" when it is on, else "". */
function busyPollText(b: StatusReport['busyPoll']): string {
  if (!b || b.us === 0) return '';
  const spent = b.skipped > 0 ? `, spent ${b.skipped} times` : '';
  const loaded = b.loaded > 0 ? `; not under a load (above ${b.maxRate} frames/s or more than ${b.maxBatch} at once): ${b.loaded} times` : '';
  return `, busy poll ${b.us} µs (${b.frames} frames read spinning, ${Math.round(b.idleUs / 1000)} ms idle spinning, budget ${b.budgetPercent}% of a core${spent}${loaded})`;
}

export function formatStatus(s: StatusReport): string {
  const out: string[] = [];
  out.push(`lanparty ${s.version} pid ${s.pid}, up ${s.uptimeS} s, config ${s.config}, data path ${s.native ? 'native (recvmmsg/sendmmsg)' : 'JS'}${busyPollText(s.busyPoll)}`);
  if (s.memory) out.push(`memory: RSS ${si(s.memory.rssBytes, 'B')}, JS heap ${si(s.memory.heapUsedBytes, 'B')}, buffers ${si(s.memory.externalBytes, 'B')}`);
  out.push(`MAC table ${s.switch.table.size}/${s.switch.table.capacity}: learned ${s.switch.table.learned}, moved ${s.switch.table.moved}, expired ${s.switch.table.expired}, evicted ${s.switch.table.evicted}${s.switch.table.flushed ? `, forgotten on topology changes ${s.switch.table.flushed}` : ''}`);
  const gone = s.switch.retired;
  if (gone && gone.ports > 0) {
    const drops = Object.entries(gone.drops).filter(([, n]) => n > 0).map(([r, n]) => `${r}=${n}`).join(' ') || 'none';
    out.push(`Ports gone: ${gone.ports} (rx ${gone.rxFrames} frames, tx ${gone.txFrames} frames, drops: ${drops})`);
  }
  const cc = s.control;
  if (cc && cc.badRequests + cc.overlongRequests + cc.handlerErrors + cc.idleClosed + cc.refusedConnections > 0) {
    out.push(`Control socket: ${cc.connections} connections; refused: bad requests ${cc.badRequests}, over 1 MiB ${cc.overlongRequests}, idle ${cc.idleClosed}, ` +
      `over the connection limit ${cc.refusedConnections}; internal errors ${cc.handlerErrors}`);
  }
  const w = s.web;
  if (w && w.badRequests + w.handlerErrors + w.refusedConnections + w.evictedConnections > 0) {
    out.push(`Web view: bad requests ${w.badRequests}, over the connection limit ${w.refusedConnections}, closed without the token to make room ${w.evictedConnections}, internal errors ${w.handlerErrors}`);
  }
  if (s.switch.table.pinnedRefused > 0) out.push(`Frames claiming lanparty's own MAC from another port (not learned): ${s.switch.table.pinnedRefused}`);
  out.push('');
  out.push('Transports');
  out.push(table([['URL', 'STATE', 'ADDRESS', 'PORTS'], ...s.transports.map((t) => [t.url, t.state, t.address, String(t.portCount)])]));
  // Drops below the ports (at flush time, or before a datagram has a port): only when there are any.
  for (const t of s.transports) {
    const pe = t.peers;
    if (pe && pe.refused + pe.evicted > 0) {
      out.push(`  ${t.url} peers: ${t.portCount} of at most ${pe.max}; new sources refused ${pe.refused}, evicted to make room ${pe.evicted}, aged out ${pe.aged}`);
    }
    if (t.refusedConnections) out.push(`  ${t.url}: connections refused at the listener's limit ${t.refusedConnections}`);
    const k = t.socket;
    if (!k) continue;
    if (k.notAccepted > 0) out.push(`  ${t.url} socket: from sources outside the accept list, dropped ${k.notAccepted}`);
    if (k.sendErrors + k.sendQueued + k.recvErrors + k.truncated + k.unaddressable > 0) {
      out.push(`  ${t.url} socket: send dropped ${k.sendDropped} (queue full), other send errors ${k.sendErrors - k.sendDropped}, ` +
        `queued for slow receivers ${k.sendQueued}, receive errors ${k.recvErrors}, truncated ${k.truncated}, no reply address ${k.unaddressable}`);
    }
    if (k.flowPauses > 0) {
      out.push(`  ${t.url} socket: reading paused for slow readers ${k.flowPauses} (flow control), ` +
        `stuck readers ${k.flowTimeouts} (held it 200 ms; frames to them are dropped once their backlog is full)`);
    }
  }
  out.push('');
  out.push('Ports');
  out.push(table([
    ['ID', 'NAME', 'RX FRAMES', 'RX BYTES', 'TX FRAMES', 'TX BYTES', 'RX RATE', 'TX RATE', 'DROPS'],
    ...s.ports.map((p) => [
      String(p.id), p.forwarding === false ? `${p.name} (blocking)` : p.name, String(p.rxFrames), String(p.rxBytes), String(p.txFrames), String(p.txBytes),
      si(p.rates.rxBitsPerS, 'bit/s'), si(p.rates.txBitsPerS, 'bit/s'),
      Object.entries(p.drops).filter(([, n]) => n > 0).map(([r, n]) => `${r}=${n}`).join(' ') || '-',
    ]),
  ]));
  for (const p of s.ports) {
    if (!p.flow || p.flow.pauses === 0) continue;
    out.push(`  port ${p.id} (${p.name}) stopped reading ${p.flow.pauses} times for a congested port it sends to` +
      (p.flow.pauseTimeouts > 0 ? `; ${p.flow.pauseTimeouts} waits ran out (that port was stuck: frames to it are dropped once 1 MiB waits for it)` : ''));
  }
  for (const t of s.transports) {
    const vx = (t as { vxlan?: VxlanSection }).vxlan;
    if (vx === undefined) continue;
    out.push('');
    const c = vx.counters;
    out.push(`VXLAN vni ${vx.vni} on ${vx.underlay}: rx ${c.rxPackets} packets (dropped: other VNI ${c.rxOtherVni}, bad header ${c.rxShort + c.rxBadFlags + c.rxBadReserved}, unknown VTEP ${c.rxUnknownVtep}), tx ${c.txPackets} packets`);
    out.push(vx.vteps.length === 0 ? '(no VTEPs)' : table([['VTEP', 'KIND', 'LAST RX', 'RX', 'TX', 'MACS BEHIND'], ...vx.vteps.map((v) => [
      v.address, v.static ? 'static' : 'learned', v.lastRxS === null ? '-' : `${v.lastRxS}s`, String(v.rxPackets), String(v.txPackets), v.macs.map((m) => m.mac).join(' ') || '-',
    ])]));
  }
  for (const t of s.transports) {
    const wg = (t as { wg?: WgSection }).wg;
    if (wg === undefined) continue;
    out.push('');
    const d = wg.counters;
    out.push(`WireGuard ${wg.listen}, tunnel ${wg.address}, vni ${wg.vni}, mtu ${wg.mtu}, bridge ${wg.bridgeId} (root ${wg.rootId}, cost ${wg.rootCost}${wg.topologyChanges ? `, ${wg.topologyChanges} topology changes` : ''})${wg.underLoad ? ', UNDER LOAD (cookies required)' : ''}`);
    out.push(`  rejected: bad mac1 ${d.rxBadMac1}, bad mac2 ${d.rxBadMac2}, rate-limited ${d.rxRateLimited}, unknown index ${d.rxUnknownIndex}, handshake failed ${d.rxHandshakeFailed}, decrypt failed ${d.rxDecryptFailed}, bad size/type ${d.rxBadSize + d.rxBadType}; cookie replies sent ${d.txCookieReplies}`);
    out.push(wg.peers.length === 0 ? '(no peers)' : table([['PEER', 'ADDRESS', 'ENDPOINT', 'LAST HANDSHAKE', 'RX', 'TX', 'REACHABLE', 'LINK', 'REPLAYED'], ...wg.peers.map((p) => [
      p.publicKey, p.address, p.endpoint, p.lastHandshakeAgoS === null ? 'never' : `${p.lastHandshakeAgoS}s ago`, si(p.rxBytes, 'B'), si(p.txBytes, 'B'),
      p.reachable ? 'yes' : 'no', linkText(p), String(p.counters.rxReplayed ?? 0),
    ])]));
    const segs = wg.segments ?? [];
    if (segs.length > 0) {
      out.push(table([['SHARED SEGMENT', 'LINK', 'OTHER BRIDGES HEARD', 'HELLOS RX'], ...segs.map((g) => [
        g.name, `${g.role}${g.forwarding ? ' fwd' : ''}`, g.bridges.join(' ') || 'none', String(g.helloRx),
      ])]));
    }
  }
  out.push('');
  out.push('MAC table');
  out.push(s.macs.length === 0 ? '(empty)' : table([['MAC', 'VLAN', 'PORT', 'AGE', 'IPV4'], ...s.macs.map((m) => [m.mac, String(m.vlan || '-'), `${m.port} ${m.portName}`, `${m.ageS}s`, m.ips.join(',') || '-'])]));
  const svc = s.services as Record<string, unknown>;
  // Guests named by lanparty qemu (running) or in the config (src/daemon/commands/guests.ts).
  const guests = (Array.isArray(svc.guests) ? svc.guests : []) as Array<{ name: string; mac: string; state: string; transport: string | null; pid: number | null }>;
  const named = guests.filter((g) => g.state === 'running' || s.macs.some((m) => m.mac === g.mac));
  if (named.length > 0) {
    out.push('');
    out.push('Guests');
    out.push(table([['NAME', 'MAC', 'PORT', 'IPV4', 'STATE', 'QEMU PID'], ...named.map((g) => {
      const m = s.macs.find((x) => x.mac === g.mac);
      return [g.name, g.mac, m ? `${m.port} ${m.portName}` : '-', m?.ips.join(',') || '-', g.state + (g.transport ? ` via ${g.transport}` : ''), g.pid === null ? '-' : String(g.pid)];
    })]));
  }
  for (const [name, section] of Object.entries(svc)) {
    if (name === 'guests') continue;
    const sec = section as { hostAddress?: string; hostMac?: string; dhcp?: { leases?: Array<Record<string, unknown>>; pool?: { start: string; end: string; inUse: number; size: number } } | null };
    if (sec.hostAddress) {
      out.push('');
      out.push(`Virtual host ${sec.hostAddress} (${sec.hostMac})` + (sec.dhcp?.pool ? `, DHCP pool ${sec.dhcp.pool.start}-${sec.dhcp.pool.end} (${sec.dhcp.pool.inUse}/${sec.dhcp.pool.size} in use)` : ', DHCP off'));
    }
    const leases = sec.dhcp?.leases;
    if (Array.isArray(leases)) {
      out.push(`${name}: DHCP leases`);
      out.push(leases.length === 0 ? '(none)' : table([['MAC', 'IP', 'HOSTNAME', 'STATE', 'EXPIRES IN', 'CLIENT ID'], ...leases.map((l) => [String(l.mac), String(l.ip), String(l.hostname ?? '-'), String(l.state), `${l.expiresInS}s`, String(l.clientId ?? '-')])]));
    }
  }
  return out.join('\n') + '\n';
}

export async function status(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' }, control: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(STATUS_HELP);
    return 0;
  }
  const s = (await request(values.control ?? defaultControlPath(), 'status')) as StatusReport;
  process.stdout.write(values.json ? JSON.stringify(s, null, 2) + '\n' : formatStatus(s));
  return 0;
}

/** A peer's link role; a stock peer served by another lanparty names it ("edge-blocked (claimed by 3f2a…)"). */
function linkText(p: { role: string; forwarding: boolean; claimedBy?: string[] }): string {
  const via = p.role === 'edge-blocked' && p.claimedBy !== undefined && p.claimedBy.length > 0 ? ` (claimed by ${p.claimedBy.map((b) => b.slice(0, 8) + '…').join(' ')})` : '';
  return `${p.role}${p.forwarding ? ' fwd' : ''}${via}`;
}
