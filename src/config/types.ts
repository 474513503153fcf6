/**
 * Configuration types: plain validated values, separate from runtime objects (tailscale's
 * conf.go habit). Produced by `loadConfig` from a TOML file and/or CLI flags.
 */

/** One `[[wg.peer]]`: a WireGuard peer link (see transports/wg). Keys are raw 32-byte values. */
export interface WgPeerConfig {
  publicKey: Buffer;
  presharedKey: Buffer | null;
  endpoint: { host: string; port: number } | null;
  /** The peer's tunnel address (its wg0 address). */
  address: string;
  persistentKeepaliveS: number;
}

/** The `[wg]` section: encrypted peer links; becomes one port entry with scheme 'wg'. */
export interface WgConfig {
  scheme: 'wg';
  url: string;
  privateKey: Buffer;
  listen: { host: string; port: number };
  address: string;
  vni: number;
  mtuBytes: number;
  peers: WgPeerConfig[];
}

export type PortConfig =
  | WgConfig
  | { scheme: 'mcast'; url: string; group: string; port: number; localaddr: string; ttl: number; stp: boolean }
  | {
      scheme: 'udp'; url: string; host: string; port: number; peers: Array<{ host: string; port: number }>;
      /**
       * accept=: the sources taken besides the fixed peers ('any': every source). null when not
       * given: then only the fixed peers if there are any, else every source (a loopback bind).
       */
      accept: Array<{ network: number; prefixLength: number }> | 'any' | null;
    }
  | { scheme: 'unixgram'; url: string; path: string; peers: string[] }
  | { scheme: 'tcp'; url: string; host: string; port: number; connect: boolean }
  | { scheme: 'unix'; url: string; path: string; connect: boolean }
  /** A TAP device: attach by name, or create it (root) with an optional IPv4 address/prefix and MTU. */
  | { scheme: 'tap'; url: string; name: string; create: boolean; address: string | null; prefixLength: number; mtuBytes: number | null }
  | {
      scheme: 'vxlan'; url: string; host: string; port: number; vni: number;
      /** Static remote VTEPs (head-end replication targets). */
      remotes: Array<{ host: string; port: number }>;
      /** Multicast group for floods, or null. */
      group: string | null;
      /** Interface to join the group on (default: the bound address's interface). */
      dev: string | null;
      ttl: number;
      /** Accept VTEPs not listed as remotes (always true in group mode). */
      acceptAny: boolean;
      macAgeMs: number;
    };

export interface DhcpConfig {
  poolStart?: string;
  poolEnd?: string;
  leaseSeconds: number;
  keyBy: 'mac' | 'client-id';
  router?: string;
  dns?: string[];
  domain: string;
  mtu?: number;
  staticLeases: Array<{ mac?: number; name?: string; address: string }>;
  leaseFile: string | null;
  probeMs: number;
  /** Live leases per guest port / per shared port (mcast, tap, vxlan, wg); 0 no limit; unset: the services' defaults. */
  maxLeasesPerPort?: number;
  maxLeasesPerSharedPort?: number;
}

export interface ServicesConfig {
  /** null = no virtual host at all. */
  subnet: string | null;
  hostAddress?: string;
  dhcp: DhcpConfig | null;
  dnsEnabled: boolean;
}

export interface Config {
  /** busyPollUs, busyPollBudgetPercent: see setBusyPoll in io/addon.ts (us 0: off). */
  switch: { macAgeMs: number; macTableSize: number; macPortSize: number; maxFrameBytes: number; busyPollUs: number; busyPollBudgetPercent: number };
  ports: PortConfig[];
  /**
   * How many of the first ports lanparty chose itself (its defaults; 0 when the command line or
   * the config file names ports). Only these may be skipped when they cannot open.
   */
  defaultPortCount: number;
  /** Private mode: the directory (made 0700) that holds its unix ports; null otherwise. */
  privateDir: string | null;
  services: ServicesConfig;
  control: { socketPath: string };
  /** Guest names to print QEMU arguments for. */
  guests: string[];
  /** Idle time after which a dgram peer port is removed. */
  peerIdleMs: number;
  /** Where the configuration came from, for messages. */
  source: string;
}
