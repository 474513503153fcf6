/**
 * Turns ServicesOptions (plain configuration) into checked runtime values. Every error is an
 * LP_ERR_CONFIG naming the option, the bad value and what would be accepted.
 */
import { createHash } from 'node:crypto';
import { LanpartyError } from '../util/index.js';
import { formatIpv4Address, parseIpv4Address, parseIpv4Cidr, type Ipv4Cidr } from '../wire/index.js';
import type { DhcpConfig } from './dhcp/index.js';
import type { DhcpOptions, ServicesOptions } from './types.js';

export const DEFAULT_SUBNET = '10.77.0.0/24';
export const DEFAULT_LEASE_SECONDS = 3600;
export const DEFAULT_DOMAIN = 'lan';
export const DEFAULT_PROBE_MS = 300;
/**
 * Live leases per guest port (udp, unixgram, tcp, unix) by default: a guest with a bridge or
 * containers inside has room, one guest cannot take a /24 pool.
 */
export const DEFAULT_MAX_LEASES_PER_PORT = 64;
/** Live leases per shared port (mcast, tap, vxlan, wg) by default: 0, no limit, so a busy segment works. */
export const DEFAULT_MAX_LEASES_PER_SHARED_PORT = 0;

/** The defaults of the issue: DHCP and DNS on, 10.77.0.0/24, in-memory leases. */
export function defaultDhcpOptions(): DhcpOptions {
  return { leaseSeconds: DEFAULT_LEASE_SECONDS, keyBy: 'mac', domain: DEFAULT_DOMAIN, staticLeases: [], leaseFile: null, probeMs: DEFAULT_PROBE_MS };
}

export function defaultServicesOptions(): ServicesOptions {
  return { subnet: DEFAULT_SUBNET, dhcp: defaultDhcpOptions(), dnsEnabled: true };
}

export interface ResolvedServices {
  subnet: Ipv4Cidr;
  hostIp: number;
  hostMac: number;
  dhcp: DhcpConfig | null;
  dnsEnabled: boolean;
  domain: string;
  leaseFile: string | null;
}

function configError(path: string, msg: string): LanpartyError {
  return new LanpartyError('LP_ERR_CONFIG', `${path}: ${msg}`);
}

function address(path: string, text: string): number {
  try {
    return parseIpv4Address(text);
  } catch (err) {
    throw new LanpartyError('LP_ERR_CONFIG', `${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** A fixed, locally administered unicast MAC for the virtual host of `subnet` (IEEE 802 U/L bit). */
export function defaultHostMac(subnet: string): number {
  const h = createHash('sha256').update('lanparty-services:' + subnet).digest();
  h[0] = (h[0] & 0xfc) | 0x02;
  return h.readUInt32BE(0) * 0x10000 + h.readUInt16BE(4);
}

const DOMAIN_RE = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export function resolveServices(opts: ServicesOptions): ResolvedServices {
  let subnet: Ipv4Cidr;
  try {
    subnet = parseIpv4Cidr(opts.subnet);
  } catch (err) {
    throw new LanpartyError('LP_ERR_CONFIG', `services.subnet: ${(err as Error).message}`, { cause: err });
  }
  if (subnet.prefixLength > 29) throw configError('services.subnet', `"${opts.subnet}" leaves no room for a pool; use a prefix of /29 or shorter, e.g. ${DEFAULT_SUBNET}`);
  const inSubnet = (ip: number): boolean => ((ip & subnet.mask) >>> 0) === subnet.network && ip !== subnet.network && ip !== subnet.broadcast;
  const hostIp = opts.hostAddress === undefined ? subnet.network + 1 : address('services.hostAddress', opts.hostAddress);
  if (!inSubnet(hostIp)) throw configError('services.hostAddress', `${formatIpv4Address(hostIp)} is not a host address of ${opts.subnet}`);
  const hostMac = opts.hostMac ?? defaultHostMac(opts.subnet);
  if (!Number.isInteger(hostMac) || hostMac <= 0 || hostMac >= 0x1000000000000 || Math.floor(hostMac / 0x10000000000) & 1) {
    throw configError('services.hostMac', 'must be a 48-bit unicast MAC (first byte even), e.g. 0x020000000001');
  }
  const d = opts.dhcp;
  const domain = (d?.domain ?? DEFAULT_DOMAIN).replace(/\.$/, '');
  if (!DOMAIN_RE.test(domain)) throw configError('services.dhcp.domain', `"${domain}" is not a DNS domain name (letters, digits, hyphens, dots), e.g. "lan"`);
  if (d === null) return { subnet, hostIp, hostMac, dhcp: null, dnsEnabled: opts.dnsEnabled, domain, leaseFile: null };

  const lastUsable = subnet.broadcast - 1;
  const defaultStart = subnet.network + 10 <= lastUsable ? subnet.network + 10 : hostIp + 1;
  const poolStart = d.poolStart === undefined ? defaultStart : address('services.dhcp.poolStart', d.poolStart);
  // The last usable address is kept out of the default pool: it is the documented address of the
  // host's TAP port (10.77.0.254 on the default subnet), so the host never competes with a guest.
  const defaultEnd = lastUsable - 1 >= defaultStart ? lastUsable - 1 : lastUsable;
  const poolEnd = d.poolEnd === undefined ? defaultEnd : address('services.dhcp.poolEnd', d.poolEnd);
  if (!inSubnet(poolStart)) throw configError('services.dhcp.poolStart', `${formatIpv4Address(poolStart)} is not a host address of ${opts.subnet}`);
  if (!inSubnet(poolEnd)) throw configError('services.dhcp.poolEnd', `${formatIpv4Address(poolEnd)} is not a host address of ${opts.subnet}`);
  if (poolEnd < poolStart) throw configError('services.dhcp.poolEnd', `${formatIpv4Address(poolEnd)} is below poolStart ${formatIpv4Address(poolStart)}`);
  if (!Number.isInteger(d.leaseSeconds) || d.leaseSeconds < 60 || d.leaseSeconds > 0xfffffffe) {
    throw configError('services.dhcp.leaseSeconds', `${d.leaseSeconds} must be a whole number of seconds from 60 to 4294967294`);
  }
  if (d.keyBy !== 'mac' && d.keyBy !== 'client-id') throw configError('services.dhcp.keyBy', `"${String(d.keyBy)}" is not "mac" or "client-id"`);
  const router = d.router === undefined ? null : address('services.dhcp.router', d.router);
  const dns = d.dns === undefined ? (opts.dnsEnabled ? [hostIp] : []) : d.dns.map((t, i) => address(`services.dhcp.dns[${i}]`, t));
  if (d.mtu !== undefined && (!Number.isInteger(d.mtu) || d.mtu < 68 || d.mtu > 65535)) throw configError('services.dhcp.mtu', `${d.mtu} must be 68..65535`);
  if (!Number.isInteger(d.probeMs) || d.probeMs < 0 || d.probeMs > 10_000) throw configError('services.dhcp.probeMs', `${d.probeMs} must be 0 (no probe) to 10000 ms`);
  const maxLeasesPerPort = d.maxLeasesPerPort ?? DEFAULT_MAX_LEASES_PER_PORT;
  const maxLeasesPerSharedPort = d.maxLeasesPerSharedPort ?? DEFAULT_MAX_LEASES_PER_SHARED_PORT;
  if (!Number.isInteger(maxLeasesPerPort) || maxLeasesPerPort < 0) throw configError('services.dhcp.maxLeasesPerPort', `${maxLeasesPerPort} must be a whole number, 0 for no limit`);
  if (!Number.isInteger(maxLeasesPerSharedPort) || maxLeasesPerSharedPort < 0) throw configError('services.dhcp.maxLeasesPerSharedPort', `${maxLeasesPerSharedPort} must be a whole number, 0 for no limit`);
  const staticByMac = new Map<number, number>();
  const staticByName = new Map<string, number>();
  const used = new Set<number>();
  d.staticLeases.forEach((s, i) => {
    const path = `services.dhcp.staticLeases[${i}]`;
    const ip = address(path + '.address', s.address);
    if (!inSubnet(ip) || ip === hostIp) throw configError(path + '.address', `${s.address} is not a free host address of ${opts.subnet}`);
    if (used.has(ip)) throw configError(path + '.address', `${s.address} is given to two static leases`);
    used.add(ip);
    if (s.mac !== undefined) {
      if (staticByMac.has(s.mac)) throw configError(path + '.mac', 'this MAC already has a static lease');
      staticByMac.set(s.mac, ip);
    } else if (s.name !== undefined && s.name !== '') {
      const name = s.name.toLowerCase();
      if (staticByName.has(name)) throw configError(path + '.name', `"${s.name}" already has a static lease`);
      staticByName.set(name, ip);
    } else {
      throw configError(path, 'needs a mac or a name to match the client');
    }
  });
  return {
    subnet, hostIp, hostMac, dnsEnabled: opts.dnsEnabled, domain, leaseFile: d.leaseFile,
    dhcp: {
      subnet, hostIp, hostMac, poolStart, poolEnd, leaseSeconds: d.leaseSeconds, keyBy: d.keyBy, router, dns, domain,
      mtu: d.mtu ?? null, staticByMac, staticByName, probeMs: d.probeMs, maxLeasesPerPort, maxLeasesPerSharedPort,
    },
  };
}
