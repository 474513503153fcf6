/**
 * Port: something Ethernet frames go in and out of. Transports and services implement it; the
 * switch knows nothing else about them (VDE's mod_support table, in TypeScript).
 *
 * Buffer ownership: in `send(buf, off, len)` the caller owns `buf` for the length of the call only.
 * A port that must keep the frame (queued behind a congested socket) copies it. A port that hands a
 * received frame to `FrameSink.input` gives up nothing: the sink must not keep the buffer either.
 */

/** Why a frame was dropped. Reported unchanged in `status`. */
export type DropReason =
  | 'runt'          // shorter than 14 bytes
  | 'oversize'      // longer than the configured or transport maximum
  | 'self-loop'     // destination is learned on the ingress port
  | 'own-frame'     // our own multicast frame looped back
  | 'queue-full'    // egress queue full (slow reader); newest frame dropped
  | 'send-error'    // the OS refused the send
  | 'bad-length'    // stream length prefix out of range
  | 'truncated'     // stream closed mid-frame
  | 'port-down'     // port not connected, or blocked by the spanning tree
  | 'empty'         // 0-byte datagram
  | 'port-error';   // the port's send threw (a bug in that port); the switch went on

export const DROP_REASONS: readonly DropReason[] = [
  'runt', 'oversize', 'self-loop', 'own-frame', 'queue-full', 'send-error', 'bad-length', 'truncated', 'port-down', 'empty', 'port-error',
];

export type PortKind = 'mcast' | 'udp' | 'unixgram' | 'tcp' | 'unix' | 'tap' | 'vxlan' | 'wg' | 'service' | 'test';

/** Per-port counters: plain numbers (exact to 2^53), every field set at construction. */
export class PortCounters {
  rxFrames = 0;
  rxBytes = 0;
  txFrames = 0;
  txBytes = 0;
  /** Largest frame received (bytes), for path-MTU diagnosis. */
  rxLargestBytes = 0;
  drops: Record<DropReason, number> = {
    'runt': 0, 'oversize': 0, 'self-loop': 0, 'own-frame': 0, 'queue-full': 0,
    'send-error': 0, 'bad-length': 0, 'truncated': 0, 'port-down': 0, 'empty': 0, 'port-error': 0,
  };
}

export interface Port {
  /** Assigned by the switch when the port is added; 0 before. Stable for the port's life. */
  id: number;
  /** Human-readable name, e.g. "udp 127.0.0.1:40001" or "tcp 127.0.0.1:33002#3". */
  readonly name: string;
  readonly kind: PortKind;
  readonly counters: PortCounters;
  /** Largest frame (bytes, from destination MAC, no FCS) this port can carry. */
  readonly maxFrameBytes: number;
  /** Where the port's remote end is, for status (e.g. "127.0.0.1:40001"). */
  endpoint(): string;
  /**
   * Sends one frame out of this port. Must not throw; failures become counted drops. (If it does
   * throw, the switch counts a `port-error` drop on this port and goes on with the other ports.)
   */
  send(buf: Buffer, off: number, len: number): void;
  /** Releases the port's resources. The owner removes it from the switch first. */
  close(): void;
  /**
   * Stream ports only (flow control, src/transports/stream): times this port stopped reading
   * because a port it sent to was congested, and waits that ran out (that port was stuck).
   */
  flow?(): { pauses: number; pauseTimeouts: number };
}

/**
 * What a transport talks to: the switch, or anything that stands in for it in tests.
 * `input` is the per-frame entry point; `addPort`/`removePort` follow ports that come and go
 * (a UDP peer first heard from, a stream connection accepted or closed); `setForwarding` follows a
 * tree port that is blocked or unblocked while it stays.
 */
export interface FrameSink {
  /** Adds a port, forwarding unless `forwarding` is false. */
  addPort(port: Port, forwarding?: boolean): void;
  removePort(port: Port): void;
  /** Blocks or unblocks a port in the sink (the spanning tree's decision); it keeps its id. */
  setForwarding(port: Port, forwarding: boolean): void;
  input(port: Port, buf: Buffer, off: number, len: number): void;
  /** Forgets learned MACs after a topology change (the spanning tree of peer links); optional. */
  flushLearned?(reason: string): void;
}
