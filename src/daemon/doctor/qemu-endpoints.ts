/**
 * qemu-endpoints: QEMU processes whose network backend points at an address where nobody listens
 * (a wrong port number, a lanparty that is not running, a unix socket path that does not exist).
 * Reads each QEMU's command line (/proc/PID/cmdline: -netdev dgram/stream/socket) and checks the
 * sockets in that QEMU's own network namespace (/proc/PID/net/udp, tcp, unix), as `ss` would.
 */
import { existsSync, statSync } from 'node:fs';
import type { Check, Finding } from './types.js';
import { TCP_LISTEN, inetSockets, qemuLabel, qemuProcesses, unixSockets } from './proc.js';

type Target =
  | { kind: 'udp'; host: string; port: number }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'unixgram'; path: string }
  | { kind: 'unix'; path: string };

/**
 * A -netdev value's options: `type` (its first item), then key=value pairs. The JSON form
 * (`{"type":"socket","udp":"127.0.0.1:33001",...}`, what libvirt passes) gives the same map, nested
 * objects flattened with dots (`"local":{"type":"inet"}` is `local.type`).
 */
export function netdevOptions(spec: string): Map<string, string> {
  const m = new Map<string, string>();
  if (spec.trimStart().startsWith('{')) {
    let parsed: unknown;
    try { parsed = JSON.parse(spec); } catch { return m; }
    const flatten = (o: unknown, prefix: string): void => {
      if (o === null || typeof o !== 'object' || Array.isArray(o)) return;
      for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
        if (v !== null && typeof v === 'object') flatten(v, `${prefix}${k}.`);
        else if (v !== null && v !== undefined) m.set(`${prefix}${k}`, String(v));
      }
    };
    flatten(parsed, '');
    return m;
  }
  const parts = spec.split(',');
  m.set('type', parts[0]);
  for (const p of parts.slice(1)) {
    const eq = p.indexOf('=');
    if (eq > 0) m.set(p.slice(0, eq), p.slice(eq + 1));
  }
  return m;
}

function hostPort(text: string): { host: string; port: number } | undefined {
  const i = text.lastIndexOf(':');
  if (i < 0) return undefined;
  return { host: text.slice(0, i) || '127.0.0.1', port: Number(text.slice(i + 1)) };
}

/** Where one -netdev (or -nic) sends, if it is a client of someone else. */
export function netdevTarget(spec: string): Target | undefined {
  const o = netdevOptions(spec);
  switch (o.get('type')) {
    case 'dgram':
      if (o.get('remote.type') === 'inet' && o.has('remote.port')) return { kind: 'udp', host: o.get('remote.host') ?? '127.0.0.1', port: Number(o.get('remote.port')) };
      if (o.get('remote.type') === 'unix' && o.has('remote.path')) return { kind: 'unixgram', path: o.get('remote.path')! };
      return undefined;
    case 'stream':
      if (o.get('server') === 'on' || o.get('server') === 'true') return undefined;
      if (o.get('addr.type') === 'inet' && o.has('addr.port')) return { kind: 'tcp', host: o.get('addr.host') ?? '127.0.0.1', port: Number(o.get('addr.port')) };
      if (o.get('addr.type') === 'unix' && o.has('addr.path')) return { kind: 'unix', path: o.get('addr.path')! };
      return undefined;
    case 'socket': {
      const connect = o.get('connect');
      if (connect) { const hp = hostPort(connect); return hp && { kind: 'tcp', ...hp }; }
      const udp = o.get('udp');
      if (udp) { const hp = hostPort(udp); return hp && { kind: 'udp', ...hp }; }
      return undefined;
    }
    default:
      return undefined;
  }
}

function describe(t: Target): string {
  return t.kind === 'udp' || t.kind === 'tcp' ? `${t.kind} ${t.host}:${t.port}` : `${t.kind === 'unix' ? 'unix stream' : 'unix datagram'} socket ${t.path}`;
}

const bound = (ip: string, host: string) => ip === host || ip === '0.0.0.0' || (host === 'localhost' && ip === '127.0.0.1');

export const qemuEndpoints: Check = {
  name: 'qemu-endpoints',
  description: 'QEMU guests whose netdev points at an address nobody listens on',
  run() {
    const findings: Finding[] = [];
    for (const q of qemuProcesses()) {
      const label = qemuLabel(q);
      for (let i = 0; i + 1 < q.argv.length; i++) {
        if (q.argv[i] !== '-netdev' && q.argv[i] !== '-nic') continue;
        const t = netdevTarget(q.argv[i + 1]);
        if (t === undefined) continue;
        let listening: boolean;
        if (t.kind === 'udp') {
          listening = inetSockets(`/proc/${q.pid}/net/udp`).some((s) => s.localPort === t.port && bound(s.localIp, t.host));
        } else if (t.kind === 'tcp') {
          listening = inetSockets(`/proc/${q.pid}/net/tcp`).some((s) => s.state === TCP_LISTEN && s.localPort === t.port && bound(s.localIp, t.host));
        } else {
          let isSocket = false;
          try { isSocket = existsSync(t.path) && statSync(t.path).isSocket(); } catch { isSocket = false; }
          const socks = unixSockets(`/proc/${q.pid}/net/unix`).filter((s) => s.path === t.path);
          listening = isSocket && (t.kind === 'unixgram' ? socks.length > 0 : socks.some((s) => s.listening));
          if (!existsSync(t.path)) {
            findings.push({
              check: this.name,
              problem: `${label} sends to ${describe(t)}, which does not exist: its guest is cut off`,
              fix: `start lanparty with that path (lanparty up -p ${t.kind === 'unix' ? 'unix' : 'unixgram'}://${t.path}) or fix the path in the QEMU -netdev; lanparty status lists the paths it serves`,
            });
            continue;
          }
        }
        if (!listening) {
          const url = t.kind === 'udp' ? `udp://${t.host}:${t.port}` : t.kind === 'tcp' ? `tcp://${t.host}:${t.port}` : `${t.kind}://${t.path}`;
          findings.push({
            check: this.name,
            problem: `${label} sends to ${describe(t)}, where nothing listens: its guest is cut off`,
            fix: `start lanparty with that port (lanparty up -p ${url}) or point the QEMU -netdev at a port lanparty serves (lanparty status lists them)${t.kind === 'tcp' || t.kind === 'unix' ? '; a QEMU 7.2 stream client does not reconnect, so restart it after lanparty is up' : ''}`,
          });
        }
      }
    }
    return findings;
  },
};
