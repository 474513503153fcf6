/**
 * path-mtu: a frame that leaves over UDP or multicast must fit the outgoing interface's MTU minus
 * 28 bytes (IPv4 + UDP headers), or it becomes IP fragments that many paths drop. Compares the
 * largest frame that entered each port (recorded by the doctor's tap) with the MTU of the
 * interface each mcast/udp port sends from. A 1514-byte frame (guest MTU 1500) over a 1500-byte
 * link is the classic case.
 */
import type { Check, Finding } from './types.js';
import { interfaceMtu, interfaceOf } from './proc.js';

const IPV4_UDP_HEADERS = 28;

export const pathMtu: Check = {
  name: 'path-mtu',
  description: 'frames larger than the MTU of the link an mcast/udp port sends over',
  async run({ d, facts }) {
    const findings: Finding[] = [];
    let largest = 0;
    let from = '';
    for (const p of d.sw.ports) {
      const n = p.counters.rxLargestBytes;
      if (n > largest) { largest = n; from = `port ${p.id} (${p.name})`; }
    }
    if (largest === 0) return findings;
    for (const p of d.config.ports) {
      const addr = p.scheme === 'mcast' ? p.localaddr : p.scheme === 'udp' ? p.host : undefined;
      if (addr === undefined) continue;
      const dev = interfaceOf(addr);
      const mtu = dev === undefined ? undefined : await interfaceMtu(dev);
      if (dev === undefined || mtu === undefined) continue;
      const fits = mtu - IPV4_UDP_HEADERS;
      if (largest > fits) {
        findings.push({
          check: this.name,
          problem: `${from} sent frames of ${largest} bytes; port ${p.url} carries them over ${dev} (MTU ${mtu}), where one UDP datagram holds at most ${fits} bytes unfragmented`,
          fix: `set the guests' MTU to ${fits - 14} (ip link set eth0 mtu ${fits - 14}, or DHCP option 26), or raise ${dev}'s MTU to ${largest + IPV4_UDP_HEADERS} or more`,
        });
      }
    }
    return findings;
  },
};
