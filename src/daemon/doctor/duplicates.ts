/**
 * duplicate-mac: one MAC moving back and forth between ports (two guests sharing a MAC: cloned VM
 * images, a fixed mac= pasted twice), from the switch's mac:move events.
 * duplicate-ip: one IPv4 address used by several MACs (ARP senders and IPv4 sources, ip-snoop).
 * dhcp-client-id: one DHCP client identifier on several MACs (cloned images keep /etc/machine-id,
 * so systemd-networkd and dhclient send the same option 61), from the DHCP service's leases.
 */
import type { Check, Finding } from './types.js';
import { formatMac } from '../../wire/index.js';

/** How long evidence counts: older moves and conflicts are history, not a current problem. */
export const EVIDENCE_WINDOW_MS = 10 * 60_000;

export const duplicateMac: Check = {
  name: 'duplicate-mac',
  description: 'one MAC moving back and forth between ports',
  run({ facts, nowMs }) {
    const findings: Finding[] = [];
    for (const [mac, h] of facts.macMoves) {
      if (h.returns < 1 || nowMs - h.lastMs > EVIDENCE_WINDOW_MS) continue;
      const names = [...new Set(h.ports)].map((id) => `${id} (${h.portNames.get(id) ?? '?'})`);
      findings.push({
        check: this.name,
        problem: `MAC ${formatMac(mac)} moved ${h.moves} times between ports ${names.join(' and ')}: two hosts use the same MAC, and each loses traffic to the other`,
        fix: `give each guest its own MAC (lanparty mac NAME prints a stable one; -device virtio-net-pci,mac=...), and check for cloned VM images`,
      });
    }
    return findings;
  },
};

export const duplicateIp: Check = {
  name: 'duplicate-ip',
  description: 'one IPv4 address used by several MACs',
  run({ d, nowMs }) {
    const findings: Finding[] = [];
    for (const c of d.snoop.conflicts.values()) {
      if (c.macs.length < 2 || (c.lastSeenMs > 0 && nowMs - c.lastSeenMs > EVIDENCE_WINDOW_MS)) continue;
      findings.push({
        check: this.name,
        problem: `IPv4 address ${c.ip} is used by ${c.macs.length} MACs: ${c.macs.map(formatMac).join(', ')}`,
        fix: `give each guest its own address (use DHCP, or fix the static ip in one of them)`,
      });
    }
    return findings;
  },
};

interface LeaseLike { mac?: unknown; clientId?: unknown; ip?: unknown }

/** Leases from whatever DHCP status sections the services registered. */
function leasesIn(section: unknown): LeaseLike[] {
  if (section === null || typeof section !== 'object') return [];
  const s = section as { leases?: unknown; dhcp?: unknown };
  if (Array.isArray(s.leases)) return s.leases as LeaseLike[];
  return leasesIn(s.dhcp);
}

export const dhcpClientId: Check = {
  name: 'dhcp-client-id',
  description: 'one DHCP client identifier on several MACs (cloned images)',
  run({ d }) {
    const findings: Finding[] = [];
    const services = d.status().services as Record<string, unknown>;
    for (const [name, section] of Object.entries(services ?? {})) {
      const byId = new Map<string, Set<string>>();
      for (const l of leasesIn(section)) {
        if (typeof l.clientId !== 'string' || l.clientId === '' || typeof l.mac !== 'string') continue;
        let macs = byId.get(l.clientId);
        if (!macs) byId.set(l.clientId, (macs = new Set()));
        macs.add(l.mac);
      }
      for (const [id, macs] of byId) {
        if (macs.size < 2) continue;
        findings.push({
          check: this.name,
          problem: `${name}: DHCP client identifier ${id} is sent by ${macs.size} MACs (${[...macs].join(', ')}): cloned guests that a server keyed by client id would give one address`,
          fix: `in each clone, reset the identity (rm /etc/machine-id && systemd-machine-id-setup; remove /var/lib/dhcp/*.leases), or keep lanparty's DHCP keyed by MAC (dhcp.key_by = "mac")`,
        });
      }
    }
    return findings;
  },
};
