/**
 * Shared pieces of the hostile, crash and soak suites: start `lanparty up` as a child of a test
 * process that already runs in its own network namespace (test/helpers/self-netns.ts), read its
 * status, sample its memory from /proc, and speak QEMU's wire formats (udp datagrams, 4-byte
 * length-prefixed streams) with frames that carry what a test wants.
 */
import type { StatusReport } from '../../src/daemon/status.js';
import { spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { registerCleanup, type Netns } from '../../lab/netns.js';
import { lanpartyStatus, startLanparty, type Lanparty, type LanpartyOptions } from '../../lab/netns-lanparty.js';

/** A stand-in for Netns when the test process is itself inside the namespace: spawns directly. */
export function selfNs(env: NodeJS.ProcessEnv = process.env): Netns {
  const shim = {
    name: 'self',
    spawn(argv: string[], label: string): ChildProcess {
      console.log(`[self] ${argv.join(' ')} &`);
      const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
      const c = registerCleanup(`${label} (pid ${child.pid})`, () => { try { if (child.exitCode === null) process.kill(child.pid!, 'SIGKILL'); } catch { /* gone */ } });
      child.once('exit', () => c.forget());
      return child;
    },
  };
  return shim as unknown as Netns;
}

export async function startSelf(opts: Omit<LanpartyOptions, 'ns'>, env?: NodeJS.ProcessEnv): Promise<Lanparty> {
  return startLanparty({ ns: selfNs(env), ...opts });
}

export interface PortRow {
  id: number; name: string; kind: string; endpoint: string;
  rxFrames: number; rxBytes: number; txFrames: number; txBytes: number;
  drops: Record<string, number>;
}
export interface MacRow { mac: string; vlan: number; port: number; pinned: boolean }
export interface StatusJson {
  pid: number;
  memory: StatusReport['memory'];
  switch: StatusReport['switch'];
  transports: Array<{ url: string; kind: string; state: string; portCount: number }>;
  ports: PortRow[];
  macs: MacRow[];
  services: { lan?: { hostMac: string; dhcp: null | { leases: Array<{ mac: string; ip: string; state: string }>; counters: { drops: Record<string, number> } } } };
}

export function status(lp: Pick<Lanparty, 'controlPath'>): Promise<StatusJson> {
  return lanpartyStatus<StatusJson>(lp);
}

/** VmRSS of a process in KiB (from /proc/PID/status), or -1 when it is gone. */
export function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

export function macText(mac: number): string {
  return mac.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');
}

/** An Ethernet frame dst <- src of the local experimental ethertype 0x88b5, `payload` after the header, padded to 60. */
export function frameFrom(dst: number, src: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const f = Buffer.alloc(Math.max(60, 14 + payload.length));
  f.writeUInt32BE(Math.floor(dst / 0x10000), 0); f.writeUInt16BE(dst % 0x10000, 4);
  f.writeUInt32BE(Math.floor(src / 0x10000), 6); f.writeUInt16BE(src % 0x10000, 10);
  f.writeUInt16BE(0x88b5, 12);
  payload.copy(f, 14);
  return f;
}

/** A random locally administered unicast MAC (02:xx:...), or a group MAC when `group`. */
export function randomMac(group = false): number {
  const b = Buffer.alloc(6);
  for (let i = 0; i < 6; i++) b[i] = Math.floor(Math.random() * 256);
  b[0] = (b[0] & 0xfc) | 0x02 | (group ? 1 : 0);
  return b.readUInt32BE(0) * 0x10000 + b.readUInt16BE(4);
}

export interface UdpClient {
  sock: dgram.Socket;
  port: number;
  received: Buffer[];
  /** Sends and waits until the datagram left (the callback). */
  send(b: Buffer): Promise<void>;
  close(): void;
}

/** A QEMU `-netdev dgram` stand-in: bound on 127.0.0.1, sending to lanparty's udp port. */
export function udpClient(toPort: number, bindPort = 0): Promise<UdpClient> {
  const sock = dgram.createSocket('udp4');
  const received: Buffer[] = [];
  sock.on('message', (m) => received.push(m));
  return new Promise((resolve) => sock.bind(bindPort, '127.0.0.1', () => {
    resolve({
      sock, port: sock.address().port, received,
      send: (b) => new Promise((res, rej) => sock.send(b, toPort, '127.0.0.1', (err) => (err ? rej(err) : res()))),
      close: () => { try { sock.close(); } catch { /* closed */ } },
    });
  }));
}

/** Length-prefixes a frame the way QEMU's stream netdev does (4-byte big-endian length). */
export function framed(f: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(f.length);
  return Buffer.concat([h, f]);
}

export function connectStream(opts: net.NetConnectOpts): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(opts);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
