/**
 * Readers for the kernel's views that `ip maddr`, `ss` and `sysctl` show: /proc/net/igmp,
 * /proc/net/dev_mcast, /proc/net/{udp,tcp,unix} (optionally of another process's namespace via
 * /proc/PID/net), interface addresses and MTUs. Missing files give empty results.
 */
import { readFileSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import { execFile } from 'node:child_process';

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** An IPv4 address as /proc/net prints it: a native-endian word in hex ("0100007F" on x86 is 127.0.0.1). */
function hexIp(h: string): string {
  const n = parseInt(h, 16);
  return os.endianness() === 'LE' ? `${n & 255}.${(n >>> 8) & 255}.${(n >>> 16) & 255}.${n >>> 24}` : `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** IPv4 group memberships per interface from /proc/net/igmp (groups are host byte order hex). */
export function igmpMemberships(procNet = '/proc/net'): Array<{ dev: string; group: string }> {
  const out: Array<{ dev: string; group: string }> = [];
  let dev = '';
  for (const line of read(`${procNet}/igmp`).split('\n').slice(1)) {
    const head = /^\d+\s+(\S+)\s*:/.exec(line);
    if (head) {
      dev = head[1];
      continue;
    }
    const g = /^\s+([0-9A-Fa-f]{8})\s/.exec(line);
    if (g && dev) {
      out.push({ dev, group: hexIp(g[1]) });
    }
  }
  return out;
}

/** Link-layer multicast addresses per interface from /proc/net/dev_mcast ("01005e000001"). */
export function linkMemberships(procNet = '/proc/net'): Array<{ dev: string; mac: string }> {
  return read(`${procNet}/dev_mcast`).split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 5).map((f) => ({ dev: f[1], mac: f[4] }));
}

/** The 01:00:5e MAC an IPv4 group maps to (RFC 1112 section 6.4), as dev_mcast prints it. */
export function groupMac(group: string): string {
  const p = group.split('.').map(Number);
  return `01005e${((p[1] & 0x7f)).toString(16).padStart(2, '0')}${p[2].toString(16).padStart(2, '0')}${p[3].toString(16).padStart(2, '0')}`;
}

export interface InetSocket { localIp: string; localPort: number; remoteIp: string; remotePort: number; state: number }

const ADDR = /^([0-9A-F]{8}):([0-9A-F]{4})$/i;

/** The rows of /proc/net/udp or /proc/net/tcp: the socket, and every column split out. */
function inetRows(file: string): Array<{ sock: InetSocket; fields: string[] }> {
  const out: Array<{ sock: InetSocket; fields: string[] }> = [];
  for (const line of read(file).split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = ADDR.exec(f[1] ?? '');
    const remote = ADDR.exec(f[2] ?? '');
    if (!/^\d+:$/.test(f[0]) || !local || !remote || !/^[0-9A-F]{2}$/i.test(f[3] ?? '')) continue;
    out.push({
      sock: { localIp: hexIp(local[1]), localPort: parseInt(local[2], 16), remoteIp: hexIp(remote[1]), remotePort: parseInt(remote[2], 16), state: parseInt(f[3], 16) },
      fields: f,
    });
  }
  return out;
}

/** IPv4 sockets from /proc/net/udp or /proc/net/tcp (addresses are host byte order hex). */
export function inetSockets(file: string): InetSocket[] {
  return inetRows(file).map((r) => r.sock);
}

export interface UdpSocketRow extends InetSocket { drops: number }

/**
 * IPv4 UDP sockets from /proc/net/udp with their peer (0.0.0.0:0 unless connected) and `drops`:
 * datagrams the kernel dropped for that socket, mostly because its receive buffer was full.
 */
export function udpSocketRows(file: string): UdpSocketRow[] {
  return inetRows(file).filter((r) => r.fields.length >= 13).map((r) => ({ ...r.sock, drops: Number(r.fields[12]) }));
}

export const TCP_LISTEN = 0x0a;

/** Bound unix socket paths from /proc/net/unix, with whether they listen (stream) or are dgram. */
export function unixSockets(file: string): Array<{ path: string; listening: boolean; type: number }> {
  const out: Array<{ path: string; listening: boolean; type: number }> = [];
  for (const line of read(file).split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !f[7].startsWith('/')) continue;
    out.push({ path: f[7], listening: (parseInt(f[3], 16) & 0x10000) !== 0, type: parseInt(f[4], 16) });
  }
  return out;
}

/** The interface holding IPv4 address `ip` ("lo" for 127.x), or undefined. */
export function interfaceOf(ip: string): string | undefined {
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    if (addrs?.some((a) => a.family === 'IPv4' && a.address === ip)) return name;
  }
  if (ip.startsWith('127.')) return 'lo';
  return undefined;
}

/**
 * An interface's MTU from netlink (`ip -o link show dev`): /sys/class/net shows the namespace that
 * mounted sysfs, which is not ours after `unshare --net` or `ip netns exec` without a remount.
 */
export function interfaceMtu(dev: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    execFile('ip', ['-o', 'link', 'show', 'dev', dev], { timeout: 5000 }, (err, stdout) => {
      const m = err ? null : / mtu (\d+) /.exec(stdout);
      if (m) return resolve(Number(m[1]));
      const t = read(`/sys/class/net/${dev}/mtu`).trim();
      resolve(t ? Number(t) : undefined);
    });
  });
}

export function sysctl(path: string): string | undefined {
  const t = read(path).trim();
  return t === '' ? undefined : t;
}

/** A counter from /proc/net/netstat, e.g. ("TcpExt", "IPReversePathFilter"). */
export function netstatCounter(section: string, name: string): number | undefined {
  const lines = read('/proc/net/netstat').split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const keys = lines[i].split(/\s+/);
    const vals = lines[i + 1].split(/\s+/);
    if (keys[0] !== section + ':') continue;
    const k = keys.indexOf(name);
    if (k > 0) return Number(vals[k]);
  }
  return undefined;
}

/** "QEMU pid N (-name X)", how the doctor names a QEMU process. */
export function qemuLabel(q: { pid: number; argv: string[] }): string {
  const nameIdx = q.argv.indexOf('-name');
  return `QEMU pid ${q.pid}${nameIdx >= 0 ? ` (-name ${q.argv[nameIdx + 1]})` : ''}`;
}

/** Processes whose argv[0] looks like QEMU: pid and argv. */
export function qemuProcesses(): Array<{ pid: number; argv: string[] }> {
  const out: Array<{ pid: number; argv: string[] }> = [];
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const p of pids) {
    const raw = read(`/proc/${p}/cmdline`);
    if (!raw) continue;
    const argv = raw.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
    if (/qemu-system|qemu-kvm/.test(argv[0] ?? '')) out.push({ pid: Number(p), argv });
  }
  return out;
}
