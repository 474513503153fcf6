/**
 * Services: a virtual host on the LAN (ARP, ICMP echo) that serves DHCP and DNS to the guests.
 * It is one Port of kind 'service' on the switch, like any guest; it imports only the Port types
 * from switch, plus wire and util.
 *
 * The daemon calls `startServices(opts, sw, log)` and then `sw.addPort(services.port)`.
 */
import type { FrameSink, Port } from '../switch/index.js';
import type { Logger } from '../util/index.js';
import { formatMac, formatIpv4Address } from '../wire/index.js';
import { DhcpServer, type PortLocator, LeaseStore } from './dhcp/index.js';
import { DnsResponder } from './dns/index.js';
import { resolveServices } from './resolve.js';
import { type Clock, type ServicesOptions, type ServicesStatus, type Timers, realTimers, systemClock } from './types.js';
import { VirtualHost } from './vhost/index.js';

export * from './types.js';
export { defaultServicesOptions, defaultDhcpOptions, defaultHostMac, DEFAULT_SUBNET } from './resolve.js';
export { VirtualHost } from './vhost/index.js';
export { DhcpServer, LeaseStore, dnsLabel } from './dhcp/index.js';
export type { PortLocator } from './dhcp/index.js';
export { DnsResponder, VHOST_DNS_LABEL } from './dns/index.js';

export interface Services {
  /** Add to the switch with `addPort` after `startServices` resolves. */
  port: Port;
  /** The virtual host's MAC (48-bit number), for the switch to pin to `port`. */
  hostMac: number;
  status(): ServicesStatus;
  /** Stops timers and writes pending lease changes. Remove the port from the switch first. */
  close(): Promise<void>;
}

/**
 * Validates `opts` (throws LP_ERR_CONFIG naming the option), loads the lease file, and returns the
 * services port. `clock` must be a wall clock (lease expiry times are persisted); `timers` exist for
 * tests. `portOf` names the switch port a MAC was learned on, for the per-port lease limits
 * (without it no port limit applies).
 */
export async function startServices(
  opts: ServicesOptions, sink: FrameSink, log: Logger, clock: Clock = systemClock, timers: Timers = realTimers,
  portOf?: PortLocator,
): Promise<Services> {
  const r = resolveServices(opts);
  const hostText = formatIpv4Address(r.hostIp);
  const vhost = new VirtualHost(r.hostIp, r.hostMac, r.subnet, sink, log, hostText, clock);
  let dhcp: DhcpServer | null = null;
  if (r.dhcp !== null) {
    const dlog = log.child('dhcp');
    const store = new LeaseStore(r.leaseFile, dlog, clock, timers);
    dhcp = new DhcpServer(r.dhcp, store, vhost, dlog, clock, timers, portOf);
    const server = dhcp;
    store.load((mac, clientId) => server.keyFor(mac, clientId));
    vhost.dhcp = dhcp;
  }
  let dns: DnsResponder | null = null;
  if (r.dnsEnabled) {
    const table = dhcp ?? { lookupName: () => null, lookupAddress: () => null };
    dns = new DnsResponder(r.domain, r.hostIp, r.subnet, table, log.child('dns'), clock);
    vhost.dns = dns;
  }
  const c = r.dhcp;
  log.info(`virtual host ${hostText} (${formatMac(r.hostMac)}) on ${opts.subnet}` +
    (c ? `; DHCP pool ${formatIpv4Address(c.poolStart)}-${formatIpv4Address(c.poolEnd)}, ${c.leaseSeconds} s leases keyed by ${c.keyBy}` +
      (r.leaseFile ? `, leases in ${r.leaseFile}` : ', leases in memory') : '; DHCP off') +
    (dns ? `; DNS for *.${r.domain}` : ''));

  return {
    port: vhost,
    hostMac: r.hostMac,
    status(): ServicesStatus {
      const now = clock.nowMs();
      let dhcpStatus: ServicesStatus['dhcp'] = null;
      if (dhcp !== null && c !== null) {
        const s = dhcp.status(now);
        dhcpStatus = {
          pool: { start: formatIpv4Address(c.poolStart), end: formatIpv4Address(c.poolEnd), size: c.poolEnd - c.poolStart + 1, inUse: s.inUse },
          keyBy: c.keyBy,
          leases: s.leases,
          counters: dhcp.counters,
        };
      }
      return {
        hostAddress: hostText,
        hostMac: formatMac(r.hostMac),
        vhost: vhost.stats,
        dhcp: dhcpStatus,
        dns: dns === null ? null : { domain: r.domain, counters: dns.counters },
      };
    },
    async close(): Promise<void> {
      vhost.close();
      if (dhcp !== null) await dhcp.close();
    },
  };
}
