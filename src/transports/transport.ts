/**
 * Transport: one configured endpoint (a locator such as udp://127.0.0.1:33001) that produces switch
 * ports. A listener may produce many ports (one per UDP source address or per stream connection);
 * a multicast group is one port (a hub segment). The switch only ever sees Ports.
 */
import type { FrameSink, PortKind } from '../switch/index.js';
import type { Logger } from '../util/index.js';
import type { SocketStats } from '../io/index.js';
import type { SegmentRegistry } from './segment.js';

export interface TransportContext {
  sink: FrameSink;
  log: Logger;
  /** Largest frame the switch accepts (bytes, no FCS). */
  maxFrameBytes: number;
  /**
   * The spanning tree's shared segments on this switch (one registry per switch, made by the
   * daemon): a multicast transport with the tree on registers its group, the wg transport runs
   * the tree over every group registered. Absent: no tree over shared segments.
   */
  segments?: SegmentRegistry;
}

export interface TransportStatus {
  url: string;
  kind: PortKind;
  /** "listening", "connected", "connecting", "closed". */
  state: string;
  /** Where it listens or connects. */
  address: string;
  /** Number of switch ports it has now. */
  portCount: number;
  /** The addon moves its frames (datagrams: recvmmsg/sendmmsg; streams: the addon reads them). */
  native: boolean;
  /**
   * Datagram transports: the counters of their socket(s), where drops at flush time land (a full
   * send queue, a unix receiver's full backlog), plus what was refused before reaching a port.
   */
  socket?: SocketStats | null;
  /**
   * Transports with a port per source address (udp, unixgram): the most dynamic peers, datagrams
   * from new sources refused at that bound, peers evicted to make room (silent long enough), and
   * peers aged out (silent peerIdleMs).
   */
  peers?: { max: number; refused: number; evicted: number; aged: number };
  /** Stream listeners: connections closed at accept because the listener's cap was reached. */
  refusedConnections?: number;
}

export interface Transport {
  readonly url: string;
  readonly kind: PortKind;
  /** Binds, listens or starts connecting. Throws LanpartyError naming the locator on failure. */
  start(): Promise<void>;
  close(): Promise<void>;
  /** Called about once a second with the switch clock: idle peers age out here. */
  tick(nowMs: number): void;
  /**
   * The QEMU `-netdev` option value that joins a guest to this transport, or null when QEMU must
   * play server (connect-out transports print their own hint).
   */
  qemuNetdev(guest: string, netdevId: string): string | null;
  status(): TransportStatus;
}
