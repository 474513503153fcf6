/**
 * udp-guest-buffer: guests on this host whose own udp socket dropped datagrams lanparty sent them.
 *
 * lanparty cannot see these losses in its own counters: its sendmmsg succeeded, and the kernel
 * dropped the datagram at the guest's socket because the receive buffer was full. QEMU stops
 * reading its socket while the guest's receive ring is full, and its own socket has only
 * net.core.rmem_default (208 KiB on Debian): a busy guest at MTU 1500 lost about 1300 datagrams
 * in 20 s of iperf3 in the benchmark, and TCP halves its window at each loss. The kernel counts
 * them per socket (`drops` in /proc/net/udp, which covers every socket in this network namespace,
 * whoever owns it), so each udp switch port whose peer is a socket here is looked up there.
 * The QEMU behind it is named from its command line: -netdev dgram with that local address, or
 * the legacy -netdev socket,udp=...,localaddr= (what libvirt's <interface type='udp'> becomes, in
 * libvirt's JSON form). The fix depends on who made the socket: QEMU's own dgram socket is fixed by
 * starting the guest with `lanparty qemu` (which makes it); a legacy socket (libvirt) cannot be
 * handed over, so there the default buffer for new sockets (net.core.rmem_default) is the knob.
 */
import type { Check, Finding } from './types.js';
import { qemuLabel, qemuProcesses, sysctl, udpSocketRows } from './proc.js';
import { netdevOptions } from './qemu-endpoints.js';

/** The default receive buffer this check suggests where QEMU makes the socket (no drops at 2 MiB in bench/RESULTS.md). */
export const SUGGESTED_RMEM_DEFAULT = 2 << 20;

interface GuestQemu { label: string; legacy: boolean }

/**
 * QEMUs, as the doctor names them, by the local udp address of their -netdev ("127.0.0.1:34051"):
 * dgram (`legacy` false) or socket,udp= with localaddr (`legacy` true).
 */
function qemusByLocalAddress(): Map<string, GuestQemu> {
  const out = new Map<string, GuestQemu>();
  for (const q of qemuProcesses()) {
    for (let i = 0; i < q.argv.length - 1; i++) {
      if (q.argv[i] !== '-netdev') continue;
      const o = netdevOptions(q.argv[i + 1]);
      if (o.get('type') === 'dgram' && o.get('local.type') === 'inet') out.set(`${o.get('local.host')}:${o.get('local.port')}`, { label: qemuLabel(q), legacy: false });
      if (o.get('type') === 'socket' && o.has('udp') && o.has('localaddr')) out.set(o.get('localaddr')!, { label: qemuLabel(q), legacy: true });
    }
  }
  return out;
}

export const udpGuestBuffer: Check = {
  name: 'udp-guest-buffer',
  description: 'guests on this host whose udp socket dropped frames from lanparty (its receive buffer was full)',
  run({ d }) {
    const findings: Finding[] = [];
    const lanpartyUdp = new Set(d.transports.map((t) => t.status()).filter((s) => s.kind === 'udp').map((s) => s.address));
    const peers = d.sw.ports.filter((p) => p.kind === 'udp');
    if (peers.length === 0) return findings;
    const rows = udpSocketRows('/proc/net/udp');
    let qemus: Map<string, GuestQemu> | null = null;
    const rmemDefault = sysctl('/proc/sys/net/core/rmem_default');
    const rmemMax = sysctl('/proc/sys/net/core/rmem_max');
    for (const p of peers) {
      const at = p.endpoint();
      const colon = at.lastIndexOf(':');
      const ip = at.slice(0, colon);
      const port = Number(at.slice(colon + 1));
      // A peer on another host has no row here; a wildcard-bound socket counts only for loopback.
      const row = rows.find((r) => r.localPort === port && (r.localIp === ip || (r.localIp === '0.0.0.0' && ip.startsWith('127.'))));
      if (!row || row.drops === 0) continue;
      qemus ??= qemusByLocalAddress();
      const qemu = qemus.get(at);
      const who = qemu?.label ?? 'the guest';
      const launched = lanpartyUdp.has(`${row.remoteIp}:${row.remotePort}`);
      const ownFix = `start the guest with lanparty qemu NAME -t udp -- ..., which makes its socket with a receive buffer of up to net.core.rmem_max (${rmemMax ?? '?'}) instead of QEMU's net.core.rmem_default (${rmemDefault ?? '?'}); measured in bench/RESULTS.md section 4: no drops and about 1.4x the throughput`;
      findings.push({
        check: this.name,
        problem: `port ${p.id} (${p.name}): ${who} at ${at} did not take ${row.drops} datagrams lanparty sent it; the kernel dropped them at its socket, whose receive buffer was full ` +
          '(QEMU stops reading while the guest\'s receive ring is full: a guest that falls behind a burst, or one that is paused)',
        fix: launched
          ? `its socket already has the larger buffer lanparty qemu gives (up to net.core.rmem_max = ${rmemMax ?? '?'}); if the guest runs and still loses frames, raise that as root (sysctl -w net.core.rmem_max=4194304) and start the guest again`
          : qemu?.legacy
            ? `this QEMU uses -netdev socket,udp= (libvirt's <interface type='udp'> becomes that), and QEMU makes that socket with net.core.rmem_default (${rmemDefault ?? '?'}): ` +
              `raise it as root, sysctl -w net.core.rmem_default=${SUGGESTED_RMEM_DEFAULT} (one value for the whole host, which only its first network namespace may set: a child namespace refuses it; every socket made after it starts with that much; keep it in /etc/sysctl.d/), and restart the guest; ` +
              'or, started by hand, ' + ownFix
            : ownFix,
      });
    }
    return findings;
  },
};
