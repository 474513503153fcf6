/**
 * The doctor's checks, in the order they are reported, and the runner: every check runs, each
 * gets as far as it can, and a check that throws reports its own error instead of its findings.
 */
import type { Check, CheckResult, DoctorContext, DoctorReport } from './types.js';
import { multicastMembership } from './multicast-membership.js';
import { rpFilter } from './rp-filter.js';
import { firewall } from './firewall.js';
import { pathMtu } from './path-mtu.js';
import { duplicateMac, duplicateIp, dhcpClientId } from './duplicates.js';
import { qemuEndpoints } from './qemu-endpoints.js';
import { unixDgramQueue } from './unix-dgram-queue.js';
import { udpGuestBuffer } from './udp-guest-buffer.js';

export * from './types.js';

export const CHECKS: readonly Check[] = [
  multicastMembership, rpFilter, firewall, pathMtu, duplicateMac, duplicateIp, dhcpClientId, qemuEndpoints, unixDgramQueue, udpGuestBuffer,
];

export async function runDoctor(ctx: DoctorContext, checks: readonly Check[] = CHECKS): Promise<DoctorReport> {
  const results: CheckResult[] = await Promise.all(checks.map(async (c) => {
    try {
      return { name: c.name, description: c.description, findings: await c.run(ctx), error: null };
    } catch (err) {
      return { name: c.name, description: c.description, findings: [], error: (err as Error).message };
    }
  }));
  return { checks: results, findings: results.flatMap((r) => r.findings) };
}
// The /proc readers that cli's qemu and up commands share with the checks.
export { sysctl } from './proc.js';
export { SUGGESTED_MAX_DGRAM_QLEN, shortUnixQueue, unixQueueNow } from './unix-dgram-queue.js';
export { netdevOptions } from './qemu-endpoints.js';
