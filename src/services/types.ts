/**
 * Configuration, status and injected-time types shared by the services (vhost, dhcp, dns).
 * Configuration types are plain data; `resolve.ts` turns them into checked runtime values.
 */
import type { ReassemblyCounters } from '../wire/index.js';

export interface StaticLease {
  /** Match by client MAC (48-bit number) ... */
  mac?: number;
  /** ... or by the hostname the client sends in DHCP option 12 (case-insensitive). */
  name?: string;
  address: string;
}

export interface DhcpOptions {
  /** First and last pool address; default .10 (network + 10) to the last usable address. */
  poolStart?: string;
  poolEnd?: string;
  /** Lease time in seconds; default 3600. */
  leaseSeconds: number;
  /**
   * How leases are keyed: 'mac' (default) gives every MAC its own address even when clones send
   * the same client identifier; 'client-id' follows RFC 2132 option 61 when present.
   */
  keyBy: 'mac' | 'client-id';
  /** Option 3; omitted when unset (an isolated LAN has no gateway). */
  router?: string;
  /** Option 6. Unset: the virtual host itself when the DNS responder is on. [] sends none. */
  dns?: string[];
  /** Option 15 and the DNS responder's zone; default "lan". */
  domain: string;
  /** Option 26 (interface MTU in bytes); omitted when unset. */
  mtu?: number;
  staticLeases: StaticLease[];
  /** JSON lease file, written atomically on change; null keeps leases in memory only. */
  leaseFile: string | null;
  /** How long to wait for an answer to the ARP probe before offering an address; 0 skips probing. */
  probeMs: number;
  /**
   * Most live leases (offered or bound) the clients behind one guest port (udp, unixgram, tcp,
   * unix) may hold; default 64, 0 for no limit. Stops one guest from taking the whole pool.
   */
  maxLeasesPerPort?: number;
  /** The same for ports many guests share (mcast, tap, vxlan, wg); default 0, no limit. */
  maxLeasesPerSharedPort?: number;
}

export interface ServicesOptions {
  /** CIDR, default "10.77.0.0/24". */
  subnet: string;
  /** Default: first address of the subnet. */
  hostAddress?: string;
  /** 48-bit number; default a fixed locally administered MAC derived from the subnet. */
  hostMac?: number;
  /** null turns DHCP off. */
  dhcp: null | DhcpOptions;
  /** DNS responder on UDP 53 of the host address; default true. */
  dnsEnabled: boolean;
}

/** Milliseconds on a wall clock (lease expiry times are persisted as these). */
export interface Clock {
  nowMs(): number;
}

/** Timer functions, injected so tests run without sleeping. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

export const systemClock: Clock = { nowMs: () => Date.now() };

export type LeaseState = 'offered' | 'bound' | 'released' | 'declined' | 'conflict';

export interface LeaseStatus {
  mac: string;
  ip: string;
  hostname: string | null;
  /** Seconds until expiry; negative once expired (the record is kept for address affinity). */
  expiresInS: number;
  clientId: string | null;
  state: LeaseState;
  static: boolean;
}

export type DhcpDropReason =
  | 'malformed'          // parseDhcp threw (truncated, bad option length, huge hostname ...)
  | 'not-request'        // op is BOOTREPLY on the server port
  | 'unsupported-type'   // BOOTP (no option 53) or a type we do not serve (FORCERENEW, LEASEQUERY ...)
  | 'relayed'            // giaddr set: lanparty serves one LAN and has no route to a relay
  | 'other-server'       // REQUEST or DECLINE naming another server identifier
  | 'no-address'         // REQUEST carrying neither requested address nor ciaddr
  | 'pool-full'          // DISCOVER with no free address
  | 'probing'            // DISCOVER retransmitted while its ARP probe is running
  | 'option-too-long'    // an option joined past its limit (RFC 3396 pieces), see wire/dhcp.ts
  | 'chaddr-mismatch'    // chaddr is not the frame's source MAC (and no relay)
  | 'port-lease-limit'   // the client's switch port holds its limit of live leases
  | 'writing'            // REQUEST retransmitted while its binding is written to the lease file
  | 'lease-write-failed'; // the lease file write failed: no ACK for the new binding

export const DHCP_DROP_REASONS: readonly DhcpDropReason[] = [
  'malformed', 'not-request', 'unsupported-type', 'relayed', 'other-server', 'no-address', 'pool-full', 'probing',
  'option-too-long', 'chaddr-mismatch', 'port-lease-limit', 'writing', 'lease-write-failed',
];

/** Lease file writes. */
export interface LeaseFileCounters {
  writes: number;
  writeErrors: number;
  /** Changes that joined a write already planned or running instead of starting their own. */
  coalesced: number;
  /** Writes skipped because the table would exceed the lease file size limit. */
  oversize: number;
}

export type DhcpMessageCounts = Record<'discover' | 'offer' | 'request' | 'decline' | 'ack' | 'nak' | 'release' | 'inform' | 'other', number>;

export function zeroMessageCounts(): DhcpMessageCounts {
  return { discover: 0, offer: 0, request: 0, decline: 0, ack: 0, nak: 0, release: 0, inform: 0, other: 0 };
}

export interface DhcpCounters {
  rx: DhcpMessageCounts;
  tx: DhcpMessageCounts;
  drops: Record<DhcpDropReason, number>;
  probesSent: number;
  probeConflicts: number;
  foreignServerReplies: number;
  /** Messages, probes or ACKs whose handler threw (a bug); each cost only itself. */
  handlerErrors: number;
  leaseFile: LeaseFileCounters;
}

export interface DnsCounters {
  queries: number;
  answered: number;
  nxdomain: number;
  refused: number;
  notImplemented: number;
  malformed: number;
  /** Messages with QR set (responses) sent to the responder; dropped so two responders cannot loop. */
  responsesIgnored: number;
  /** Replies cut to the header with TC set because they would have been larger than their query. */
  truncated: number;
  /** Queries whose handler threw (a bug); each cost only itself. */
  handlerErrors: number;
}

export type VhostDropReason =
  | 'malformed-arp' | 'malformed-ipv4' | 'malformed-udp' | 'malformed-icmp'
  | 'fragment'       // an IPv4 fragment dropped by reassembly (see `reassembly` for why)
  | 'not-for-us'     // unicast frame or packet for another host (flooded unknown unicast)
  | 'unsupported'    // other ethertypes, IP protocols and ports
  | 'error';         // a handler threw (a bug); counted so the port keeps serving

export const VHOST_DROP_REASONS: readonly VhostDropReason[] = [
  'malformed-arp', 'malformed-ipv4', 'malformed-udp', 'malformed-icmp', 'fragment', 'not-for-us', 'unsupported', 'error',
];

export interface VhostCounters {
  arpReplies: number;
  icmpEchoReplies: number;
  drops: Record<VhostDropReason, number>;
  /** IPv4 reassembly (wire/ipv4-reassembly.ts): packets completed, and dropped by reason. */
  reassembly: ReassemblyCounters;
}

export interface ServicesStatus {
  hostAddress: string;
  hostMac: string;
  vhost: VhostCounters;
  dhcp: null | {
    pool: { start: string; end: string; size: number; inUse: number };
    keyBy: 'mac' | 'client-id';
    leases: LeaseStatus[];
    counters: DhcpCounters;
  };
  dns: null | { domain: string; counters: DnsCounters };
}
