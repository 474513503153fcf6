/**
 * multicast-membership: each mcast port's group must be joined on the interface of its localaddr,
 * and nowhere else on this host. A QEMU started without `localaddr=` joins on the interface the
 * route to the group picks (often eth0) while lanparty uses lo: both look fine, neither hears the
 * other. Reads /proc/net/igmp (and /proc/net/dev_mcast for the link layer), as `ip maddr` does.
 */
import type { Check, Finding } from './types.js';
import { groupMac, igmpMemberships, interfaceOf, linkMemberships } from './proc.js';

export const multicastMembership: Check = {
  name: 'multicast-membership',
  description: 'mcast groups joined on the interface of each port\'s localaddr, and only there',
  run({ d }) {
    const findings: Finding[] = [];
    const joined = igmpMemberships();
    const link = linkMemberships();
    const mcastPorts = d.config.ports.flatMap((p) => (p.scheme === 'mcast' ? [p] : []));
    for (const p of mcastPorts) {
      const dev = interfaceOf(p.localaddr);
      if (dev === undefined) {
        findings.push({
          check: this.name,
          problem: `port ${p.url}: no interface has the address ${p.localaddr}, so the group ${p.group} is not joined anywhere lanparty expects`,
          fix: `set localaddr to an address of an interface that is up (ip -4 addr), e.g. 127.0.0.1 for this host only`,
        });
        continue;
      }
      const onDev = joined.some((m) => m.dev === dev && m.group === p.group) || link.some((m) => m.dev === dev && m.mac === groupMac(p.group));
      if (!onDev) {
        findings.push({
          check: this.name,
          problem: `port ${p.url}: group ${p.group} is not joined on ${dev} (the interface of localaddr ${p.localaddr}); lanparty hears nothing from the group`,
          fix: `check that ${dev} is up and multicast-capable (ip link show ${dev}: MULTICAST), then restart lanparty`,
        });
      }
      // Interfaces lanparty itself uses for this group are expected; any other is a stray member.
      const ours = new Set(mcastPorts.filter((q) => q.group === p.group).map((q) => interfaceOf(q.localaddr)));
      for (const m of joined) {
        if (m.group !== p.group || ours.has(m.dev)) continue;
        findings.push({
          check: this.name,
          problem: `group ${p.group} is joined on ${m.dev}, but lanparty's port ${p.url} uses ${dev}: a QEMU (or another program) joined it on the wrong interface and its guests cannot reach the LAN`,
          fix: `add localaddr=${p.localaddr} to that QEMU's -netdev socket,mcast=${p.group}:${p.port} (lanparty up prints the exact arguments), or point lanparty's localaddr at an address on ${m.dev}`,
        });
      }
    }
    return dedupe(findings);
  },
};

function dedupe(f: Finding[]): Finding[] {
  const seen = new Set<string>();
  return f.filter((x) => (seen.has(x.problem) ? false : (seen.add(x.problem), true)));
}
