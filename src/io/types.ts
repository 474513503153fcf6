/**
 * The datagram I/O boundary that every datagram transport uses (udp, unixgram, mcast, later vxlan
 * and wg): a socket that receives and sends *batches*. The native addon implements it with
 * recvmmsg/sendmmsg into buffers allocated once; the JS fallback (node:dgram) delivers batches of
 * one and cannot do AF_UNIX datagrams. Shape after wireguard-go's conn.Bind.
 */

export type DgramAddress =
  | { kind: 'udp4'; host: string; port: number }
  | { kind: 'unix'; path: string };

/** An IPv4 network as unsigned 32-bit numbers: address a is inside when (a & mask) === network. */
export interface Ipv4Net {
  network: number;
  mask: number;
}

export interface MulticastOptions {
  /** Group to join, e.g. "230.0.0.1". The socket must be bound to group:port. */
  group: string;
  /** IPv4 address of the interface for membership and sending (IP_ADD_MEMBERSHIP, IP_MULTICAST_IF). */
  interfaceAddr: string;
  /** IP_MULTICAST_TTL. */
  ttl: number;
  /** IP_MULTICAST_LOOP. */
  loop: boolean;
  /** Join the group (receive side). A send-only socket sets this false. */
  join: boolean;
}

export interface BatchSocketOptions {
  kind: 'udp4' | 'unix';
  /** udp4: host and port (0 = ephemeral); unix: filesystem path (must not exist). */
  bind: { host: string; port: number } | { path: string };
  /** SO_REUSEADDR (multicast receive sockets only; unicast ports bind exclusively so clashes fail). */
  reuseAddr?: boolean;
  /** Most datagrams taken per wakeup. Default 64. */
  batchSize?: number;
  /** Largest datagram received, bytes. Default 69632 (QEMU's NET_BUFSIZE). */
  slotBytes?: number;
  rcvbufBytes?: number;
  sndbufBytes?: number;
  multicast?: MulticastOptions;
  /**
   * udp4 only. false sets SO_NO_CHECK: datagrams leave with a zero UDP checksum (RFC 7348 §5 asks
   * this of VXLAN; Open vSwitch's userspace datapath drops VXLAN whose checksum a veth left
   * unfinished). Native path only; the node:dgram fallback always sends checksums. Default true.
   */
  udpChecksum?: boolean;
  /**
   * udp4: send runs of same-length datagrams to one peer as one UDP GSO message (the receiver
   * still gets one datagram per frame). Native path, checksummed sockets only; default true.
   * The environment variable LANPARTY_UDP_GSO=0 turns it off everywhere (for measuring).
   */
  udpGso?: boolean;
  /**
   * Most peer ids live at once (distinct source addresses this socket remembers): 1..65536, default
   * 65536. A new source beyond it is dropped and counted in `unaddressable`, unless the owner opted
   * in to eviction (BatchSocket.onPeerEvicted).
   */
  maxPeers?: number;
  /**
   * Unix: flow control (io/dgram.ts, send step 5): a reader's deep backlog stops this socket
   * reading. Default: LANPARTY_UNIX_FLOW_CONTROL=1 in the environment, else off.
   */
  flowControl?: boolean;
}

/** Receive side of one wakeup. Valid only during the onBatch call; slots are reused. */
export interface RxBatch {
  /** rx.bufs[i] holds datagram i at offset 0, rx.lengths[i] bytes. */
  bufs: Buffer[];
  lengths: Int32Array;
  /** Peer id (see BatchSocket.peerId) of each datagram's source. */
  peers: Int32Array;
}

/**
 * Counters of one datagram socket, kept below the switch ports: drops that happen when the batch
 * is flushed (after the port counted the frame as sent) land here, not in any port's counters.
 */
export interface SocketStats {
  /** Every datagram not sent (full queues included). */
  readonly sendErrors: number;
  /** The part of sendErrors dropped because a queue was full: ours (UDP) or a unix receiver's backlog. */
  readonly sendDropped: number;
  /** Unix: datagrams waiting right now in per-peer backlogs for a slow receiver. */
  readonly sendQueued: number;
  readonly recvErrors: number;
  /** Datagrams larger than the receive slot, dropped. */
  readonly truncated: number;
  /** Datagrams from a source with no reply address (an unbound unix sender, a full peer table). */
  readonly unaddressable: number;
  /** udp4: datagrams from a source outside the accept list (acceptSources), dropped. */
  readonly notAccepted: number;
  /** Unix: times a slow receiver's deep backlog stopped a unix socket reading (flow control). */
  readonly flowPauses: number;
  /** Unix: slow receivers that held a socket 200 ms without draining (stuck; then dropped at the backlog's bounds). */
  readonly flowTimeouts: number;
  /** Peer ids in use right now (source addresses remembered; at most maxPeers). */
  readonly peers: number;
  /** Peer ids evicted because the table was full (least recently heard first; see onPeerEvicted). */
  readonly peersEvicted: number;
}

export interface BatchSocket {
  /** True when the native recvmmsg/sendmmsg path is in use. */
  readonly native: boolean;
  readonly rx: RxBatch;
  /**
   * Frames send() queued straight from a native socket's rx slab, without copying them (native
   * only; always 0 on the fallback). rx.bufs views may be passed to send() as they are.
   */
  readonly sentWithoutCopy: number;
  /** Bound address (ephemeral port resolved). */
  localAddress(): DgramAddress;
  /**
   * udp4, native only: drop every datagram from host:port in the kernel (a socket filter), before
   * it is copied out; host "0.0.0.0" matches the port from any address. Returns false when not
   * possible (JS fallback, unix socket): the caller must then recognise such datagrams itself.
   */
  ignoreSource(host: string, port: number): boolean;
  /**
   * udp4: from now on take datagrams only from a source inside one of `nets` or equal to one of
   * `exact`; any other is dropped before it gets a peer id (it leaves no state) and counted in
   * stats.notAccepted. Empty lists accept nothing. Call before start(). Returns false (and
   * filters nothing) on a unix socket.
   */
  acceptSources(nets: readonly Ipv4Net[], exact: ReadonlyArray<{ host: string; port: number }>): boolean;
  /**
   * A small integer id for a peer address, created on first use; the same address gives the same
   * id while it lives. An id asked for here is pinned: never evicted, only released. -1 when the
   * table is full (every id pinned, or eviction not enabled).
   *
   * Peer ids live until releasePeer (or an eviction the owner was told of), so an owner that keeps
   * something per source (a port, an endpoint) releases the id when it forgets that source, and an
   * owner that keeps nothing for a source releases its id after handling its datagrams. An id is
   * never given to another address before it was released.
   */
  peerId(addr: DgramAddress): number;
  peerAddress(id: number): DgramAddress;
  /**
   * The owner keeps nothing for `id` and sends nothing more to it: its address is forgotten and the
   * id may later name another address. Datagrams already queued to it still go out (native: the id
   * is freed after the next flush). A unix backlog waiting for it is dropped (sendDropped).
   */
  releasePeer(id: number): void;
  /**
   * Opts in to eviction: when the table is full, a new source evicts the least recently heard
   * peer id that is not pinned (see peerId) and was not heard in the batch being delivered, and
   * `handler(id)` runs before that batch is delivered (or before peerId returns): the owner forgets
   * what it keeps for the id (sends to it during the call still go out). The socket releases the
   * id after the handler returns. Without this, a full table refuses new sources.
   */
  onPeerEvicted(handler: (id: number) => void): void;
  /** Starts reading; onBatch(count) is called once per wakeup with count >= 1 datagrams in rx. */
  start(onBatch: (count: number) => void): void;
  /**
   * Queues one datagram to a peer. The bytes are copied (or handed to the kernel) before return,
   * so the caller keeps ownership of buf; except a view of a native socket's rx slab (rx.bufs),
   * which is read at the flush, before that socket can receive into it again, so a caller must
   * not write into an rx slot it has just passed to send(). Queued datagrams go out in one sendmmsg at the end of the
   * current tick (microtask) or when the queue fills. Returns false when the datagram was dropped
   * (queue full or an immediate send error). Native unix sockets never drop on a receiver's full
   * queue right away: such datagrams wait in a bounded per-peer backlog (in order) and are sent when
   * the receiver reads; only a full backlog drops (the newest datagram, counted in sendDropped).
   */
  send(peer: number, buf: Buffer, off: number, len: number): boolean;
  /** Sends everything queued now. */
  flush(): void;
  /** Counters of the socket itself. */
  readonly stats: SocketStats;
  close(): void;
}

/** What TapDevice.write did with a frame (TAP_SENT ... TAP_ERROR in tap.ts). */
export type TapWriteResult = 0 | 1 | 2 | 3 | 4;

/** An interface's index and flags (IFF_UP = 0x1, ...), read with ioctls in this process's netns. */
export interface InterfaceState {
  ifindex: number;
  flags: number;
}
