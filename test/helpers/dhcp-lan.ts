/**
 * Helpers for the DHCP/DNS suites (test/netns/dhcp*.netns.test.ts): guests that take their address
 * from lanparty's virtual host over the udp port, and typed reads of lanparty's lease table and
 * DHCP/DNS counters through `lanparty status --json` (services.lan).
 */
import type { Netns } from '../../lab/netns.js';
import { waitFor } from '../../lab/netns.js';
import { macForGuest, startGuest, type CmdlineValue, type Guest, type GuestResult, type ParsedResult } from '../../lab/guest.js';
import { attach } from '../../lab/guest-lan.js';
import { lanpartyStatus, type Lanparty } from '../../lab/netns-lanparty.js';

/** The virtual host's address with the default subnet 10.77.0.0/24. */
export const VHOST_IP = '10.77.0.1';

export interface LeaseRow {
  mac: string;
  ip: string;
  hostname: string | null;
  expiresInS: number;
  clientId: string | null;
  state: 'offered' | 'bound' | 'released' | 'declined' | 'conflict';
  static: boolean;
}

export type MessageCounts = Record<'discover' | 'offer' | 'request' | 'decline' | 'ack' | 'nak' | 'release' | 'inform' | 'other', number>;

export interface LanSection {
  hostAddress: string;
  hostMac: string;
  vhost: { arpReplies: number; icmpEchoReplies: number; drops: Record<string, number> };
  dhcp: null | {
    pool: { start: string; end: string; size: number; inUse: number };
    keyBy: 'mac' | 'client-id';
    leases: LeaseRow[];
    counters: { rx: MessageCounts; tx: MessageCounts; drops: Record<string, number>; probesSent: number; probeConflicts: number; foreignServerReplies: number };
  };
  dns: null | { domain: string; counters: Record<'queries' | 'answered' | 'nxdomain' | 'refused' | 'notImplemented' | 'malformed' | 'responsesIgnored', number> };
}

/** services.lan of `lanparty status --json`; throws when the virtual host is off. */
export async function lanStatus(lp: Pick<Lanparty, 'controlPath'>): Promise<LanSection> {
  const s = await lanpartyStatus<{ services: { lan?: LanSection } }>(lp);
  if (s.services.lan === undefined) throw new Error('lanparty status has no services.lan section (virtual host off?)');
  return s.services.lan;
}

/** The lease rows, from status. */
export async function leases(lp: Pick<Lanparty, 'controlPath'>): Promise<LeaseRow[]> {
  return (await lanStatus(lp)).dhcp?.leases ?? [];
}

/** Polls the lease table until `mac` has a record in `state`; returns it. */
export function waitLeaseState(lp: Pick<Lanparty, 'controlPath'>, mac: string, state: LeaseRow['state'], timeoutMs = 120_000): Promise<LeaseRow> {
  return waitFor(`lease of ${mac} in state ${state}`, async () => (await leases(lp)).find((l) => l.mac === mac && l.state === state), timeoutMs, 500);
}

/** Resolves when the guest printed a console line matching `re`, with that line. */
export function waitConsole(g: Guest, re: RegExp, timeoutMs = 150_000): Promise<string> {
  return waitFor(`${g.name} console line ${re}`, () => g.lines.find((l) => re.test(l)), timeoutMs, 200);
}

/**
 * A guest on lanparty's udp port (`attach('udp', n)`, MAC 02:00:00:00:00:NN) that takes a DHCP
 * lease; `cmdline` adds or overrides lp.* options. The hostname it sends is `name`.
 */
export function dhcpGuest(ns: Netns, dir: string, n: number, name: string, cmdline: Record<string, CmdlineValue> = {}, timeoutMs = 200_000): Promise<Guest> {
  return startGuest({
    ns,
    name,
    mac: macForGuest(n),
    netdevArgs: [attach('udp', n, dir).netdev],
    cmdline: { dhcp: 1, deadline: Math.floor(timeoutMs / 1000) - 40, ...cmdline },
    timeoutMs,
  });
}

/** The guest's result line of `kind` (and `target`, if given); throws naming what is missing. */
export function resultOf(name: string, r: GuestResult, kind: string, target?: string): ParsedResult {
  const found = r.results.find((x) => x.kind === kind && (target === undefined || x.target === target));
  if (found === undefined) throw new Error(`${name}: no "LP-RESULT ${kind}${target ? ' ' + target : ''}" line; results:\n${r.results.map((x) => x.line).join('\n')}`);
  return found;
}
