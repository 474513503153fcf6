/**
 * rp-filter: strict reverse-path filtering (rp_filter=1) drops multicast and UDP from senders
 * whose address this host would not route back through the receiving interface. Reported when an
 * interface carrying an mcast or udp port is strict and the kernel has counted such drops
 * (TcpExt IPReversePathFilter in /proc/net/netstat); loopback is never filtered.
 */
import type { Check, Finding } from './types.js';
import { interfaceOf, netstatCounter, sysctl } from './proc.js';

export const rpFilter: Check = {
  name: 'rp-filter',
  description: 'strict rp_filter dropping traffic on interfaces that carry mcast/udp ports',
  run({ d }) {
    const findings: Finding[] = [];
    const drops = netstatCounter('TcpExt', 'IPReversePathFilter') ?? 0;
    const all = Number(sysctl('/proc/sys/net/ipv4/conf/all/rp_filter') ?? 0);
    const devs = new Map<string, string>();
    for (const p of d.config.ports) {
      const addr = p.scheme === 'mcast' ? p.localaddr : p.scheme === 'udp' ? p.host : undefined;
      if (addr === undefined) continue;
      const dev = interfaceOf(addr);
      if (dev !== undefined && dev !== 'lo') devs.set(dev, p.url);
    }
    for (const [dev, url] of devs) {
      const own = Number(sysctl(`/proc/sys/net/ipv4/conf/${dev}/rp_filter`) ?? 0);
      const mode = Math.max(all, own);   // the kernel uses the larger of conf/all and conf/<dev>
      if (mode === 1 && drops > 0) {
        findings.push({
          check: this.name,
          problem: `interface ${dev} (port ${url}) has strict reverse-path filtering (rp_filter=1) and the kernel has dropped ${drops} packets for failing it`,
          fix: `use loose mode: sysctl -w net.ipv4.conf.${dev}.rp_filter=2 net.ipv4.conf.all.rp_filter=2 (or add a route back to the senders via ${dev})`,
        });
      }
    }
    return findings;
  },
};
