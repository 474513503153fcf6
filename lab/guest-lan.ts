/**
 * Building blocks for LAN tests with guests on lanparty: the QEMU 7.2 netdev arguments that pair
 * with each lanparty port locator, and `runLan`, which starts lanparty plus one guest per member
 * in a namespace (in the order QEMU 7.2 needs: stream servers before lanparty connects, stream
 * clients after lanparty listens), has every guest ping every other, and collects the results.
 */
import type { TestContext } from 'node:test';
import { join } from 'node:path';
import type { Netns } from './netns.js';
import { macForGuest, startGuest, summaryLines, type Guest, type GuestResult } from './guest.js';
import { startLanparty, type Lanparty, type LanpartyOptions } from './netns-lanparty.js';

export type TransportKind = 'mcast' | 'udp' | 'unixgram' | 'tcp' | 'unix' | 'tcp+connect';
export const TRANSPORTS: TransportKind[] = ['mcast', 'udp', 'unixgram', 'tcp', 'unix', 'tcp+connect'];

export const LP_UDP_PORT = 33001;
export const LP_TCP_PORT = 33002;
export const GUEST_UDP_BASE = 34000;
export const GUEST_STREAM_SERVER_BASE = 5555;

export interface Attachment {
  /** Locators lanparty needs for this guest (shared ones are de-duplicated by the caller). */
  ports: string[];
  /** The -netdev value (id n0). */
  netdev: string;
  /** QEMU is a stream server (server=on): start it before lanparty and wait for it to listen. */
  serverPort?: number;
  /** QEMU is a 7.2 stream client: start it only after lanparty's "ready". */
  needsListeningLanparty: boolean;
}

/**
 * How guest number `n` joins lanparty over `kind`. `dir` holds unix sockets. `mcastGroup` lets
 * tests put guests on different groups so that only lanparty can join them.
 */
export function attach(kind: TransportKind, n: number, dir: string, mcastGroup = '230.0.0.1:33000', localaddr = '127.0.0.1'): Attachment {
  switch (kind) {
    case 'mcast':
      return {
        ports: [`mcast://${mcastGroup}?localaddr=${localaddr}&ttl=1`],
        netdev: `socket,id=n0,mcast=${mcastGroup},localaddr=${localaddr}`,
        needsListeningLanparty: false,
      };
    case 'udp':
      return {
        ports: [`udp://127.0.0.1:${LP_UDP_PORT}`],
        netdev: `dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${GUEST_UDP_BASE + n},remote.type=inet,remote.host=127.0.0.1,remote.port=${LP_UDP_PORT}`,
        needsListeningLanparty: false,
      };
    case 'unixgram':
      return {
        ports: [`unixgram://${join(dir, 'dgram.sock')}`],
        netdev: `dgram,id=n0,local.type=unix,local.path=${join(dir, `g${n}.sock`)},remote.type=unix,remote.path=${join(dir, 'dgram.sock')}`,
        needsListeningLanparty: false,
      };
    case 'tcp':
      return {
        ports: [`tcp://127.0.0.1:${LP_TCP_PORT}`],
        netdev: `stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=${LP_TCP_PORT}`,
        needsListeningLanparty: true,
      };
    case 'unix':
      return {
        ports: [`unix://${join(dir, 'stream.sock')}`],
        netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${join(dir, 'stream.sock')}`,
        needsListeningLanparty: true,
      };
    case 'tcp+connect': {
      const port = GUEST_STREAM_SERVER_BASE + n;
      return {
        ports: [`tcp+connect://127.0.0.1:${port}`],
        netdev: `stream,id=n0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=${port}`,
        serverPort: port,
        needsListeningLanparty: false,
      };
    }
    default: {
      const never: never = kind;
      throw new Error(`unknown transport ${String(never)}`);
    }
  }
}

export interface LanMember {
  name: string;
  /** Guest number: MAC 02:00:00:00:00:NN, address 10.0.0.NN/24. */
  n: number;
  attachment: Attachment;
  /** Extra lp.* parameters; default: ping every other member. */
  cmdline?: Record<string, string | number | boolean | Array<string | number>>;
}

export function guestIp(n: number): string {
  return `10.0.0.${n}`;
}

export interface LanRun {
  lanparty: Lanparty;
  results: Map<string, GuestResult>;
  /** Kills the guests and stops lanparty; resolves with lanparty's exit code. */
  stop(): Promise<number | null>;
}

/** Starts lanparty (ports from every member, de-duplicated, plus `extraPorts`) and the guests. */
export async function runLan(
  ns: Netns,
  members: LanMember[],
  opts: {
    extraPorts?: string[];
    timeoutMs?: number;
    label?: string;
    /** Passed on to startLanparty (lease file, extra TOML, flags). */
    lanparty?: Pick<LanpartyOptions, 'leaseFile' | 'configToml' | 'extraArgs'>;
  } = {},
): Promise<LanRun> {
  const timeoutMs = opts.timeoutMs ?? 150_000;
  const ports = [...new Set([...members.flatMap((m) => m.attachment.ports), ...(opts.extraPorts ?? [])])];
  const guests: Guest[] = [];
  const start = (m: LanMember) =>
    startGuest({
      ns,
      name: m.name,
      mac: macForGuest(m.n),
      netdevArgs: [m.attachment.netdev],
      cmdline: m.cmdline ?? {
        ip: `${guestIp(m.n)}/24`,
        ping: members.filter((o) => o !== m).map((o) => guestIp(o.n)),
        deadline: Math.floor(timeoutMs / 1000) - 30,
        wait: Math.floor(timeoutMs / 1000),
      },
      timeoutMs,
    });
  // QEMU stream servers first: lanparty connects to them.
  const early = members.filter((m) => !m.attachment.needsListeningLanparty);
  guests.push(...(await Promise.all(early.map(start))));
  for (const m of early) {
    if (m.attachment.serverPort !== undefined) await ns.waitListening('tcp', m.attachment.serverPort, 30_000);
  }
  const lanparty = await startLanparty({ ns, ports, label: opts.label, ...opts.lanparty });
  guests.push(...(await Promise.all(members.filter((m) => m.attachment.needsListeningLanparty).map(start))));
  const settled = await Promise.allSettled(guests.map((g) => g.result()));
  const results = new Map<string, GuestResult>();
  const errors: string[] = [];
  settled.forEach((s, i) => {
    if (s.status === 'fulfilled') results.set(guests[i].name, s.value);
    else errors.push((s.reason as Error).message);
  });
  const stop = async () => {
    for (const g of guests) g.kill();
    await Promise.all(guests.map((g) => g.exited()));
    return lanparty.stop();
  };
  if (errors.length > 0) {
    await stop();
    throw new Error(errors.join('\n'));
  }
  return { lanparty, results, stop };
}

/** Reports every member's results as diagnostics and returns failures as text (empty = all ok). */
export function checkAllPinged(t: TestContext, members: LanMember[], results: Map<string, GuestResult>): string[] {
  const failures: string[] = [];
  for (const m of members) {
    const r = results.get(m.name)!;
    for (const line of summaryLines(m.name, r)) t.diagnostic(line);
    if (r.done !== 'ok') failures.push(`${m.name}: LP-DONE ${r.done} ${r.reason}`);
    for (const o of members) {
      if (o === m) continue;
      const p = r.results.find((x) => x.kind === 'ping' && x.target === guestIp(o.n));
      if (!p?.ok) failures.push(`${m.name} (${m.attachment.netdev.split(',')[0]}) could not ping ${o.name} ${guestIp(o.n)}`);
    }
  }
  return failures;
}
