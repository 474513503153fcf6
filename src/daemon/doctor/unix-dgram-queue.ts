/**
 * unix-dgram-queue: a unix datagram socket queues at most net.unix.max_dgram_qlen datagrams
 * (10 by default, whatever their size) for its reader. When a reader (a QEMU on a unixgram port)
 * falls behind by more, lanparty's per-peer backlog (1024 datagrams or 2 MiB per reader, kept by the addon behind src/io)
 * takes the rest, and past that datagrams are dropped: counted in the transport's socket stats
 * (`sendDropped`), after the port had counted them as sent. Reported only when such drops happened.
 * With flow control turned on (LANPARTY_UNIX_FLOW_CONTROL=1; off by default), frames from other
 * unixgram guests get there only once the reader is stuck (their senders are held back 200 ms
 * first, `flowTimeouts`); frames from udp, TAP or stream ports, whose senders cannot be held back,
 * get there whenever the reader falls that far behind, as every frame does without it.
 * Bursts of full-size frames are what a queue of 10 cannot absorb (bench/RESULTS.md: unixgram at
 * 1514 bytes); a reader that does not read at all (a paused guest) is not helped by a longer one.
 */
import type { Check, Finding } from './types.js';
import { sysctl } from './proc.js';

/** A queue length that absorbs a burst of a few hundred frames (QEMU reads up to 64 per wakeup). */
export const SUGGESTED_MAX_DGRAM_QLEN = 512;

/** net.unix.max_dgram_qlen of this network namespace, as text (undefined: unreadable). */
export function unixQueueNow(): string | undefined {
  return sysctl('/proc/sys/net/unix/max_dgram_qlen');
}

/**
 * The unix datagram queue length (unixQueueNow()) when it is shorter than
 * SUGGESTED_MAX_DGRAM_QLEN, else null (long enough, or unreadable). Short, it holds back guests on
 * unixgram ports even without drops: bench/RESULTS.md section 4 (iperf3 between two guests at MTU
 * 1500: about 0.5x the plain multicast group with 10, 1.2x with 512).
 */
export function shortUnixQueue(qlenText: string | undefined): number | null {
  const qlen = Number(qlenText);
  return qlenText !== undefined && Number.isFinite(qlen) && qlen < SUGGESTED_MAX_DGRAM_QLEN ? qlen : null;
}

export const unixDgramQueue: Check = {
  name: 'unix-dgram-queue',
  description: 'unixgram ports dropping datagrams because a reader\'s queue (net.unix.max_dgram_qlen) was full',
  run({ d }) {
    const findings: Finding[] = [];
    const qlen = Number(unixQueueNow() ?? NaN);
    for (const t of d.transports) {
      const s = t.status();
      if (s.kind !== 'unixgram' || !s.socket || s.socket.sendDropped === 0) continue;
      const queue = Number.isFinite(qlen) ? `net.unix.max_dgram_qlen = ${qlen}` : 'net.unix.max_dgram_qlen (unreadable here)';
      const short = !Number.isFinite(qlen) || qlen < SUGGESTED_MAX_DGRAM_QLEN;
      findings.push({
        check: this.name,
        problem: `port ${s.url} dropped ${s.socket.sendDropped} datagrams for readers that were too slow: a reader's kernel queue (${queue} datagrams) and lanparty's backlog for it were both full` +
          (s.socket.flowTimeouts > 0 ? ` (${s.socket.flowTimeouts} times a reader held the port's senders back 200 ms without draining, so flow control stopped waiting for it)` : ''),
        fix: short
          ? `lengthen the queue as root: sysctl -w net.unix.max_dgram_qlen=${SUGGESTED_MAX_DGRAM_QLEN} (it is per network namespace and applies to sockets created after it, so restart lanparty and the guests; keep it in /etc/sysctl.d/), or use a udp:// port, whose queue is counted in bytes`
          : `the queue is already ${qlen}: a reader is not reading (a paused or hung guest?); lanparty status shows which port stopped taking frames`,
      });
    }
    return findings;
  },
};
