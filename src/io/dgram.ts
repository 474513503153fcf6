/**
 * io/dgram: opens a BatchSocket (see types.ts) backed by the native addon
 * (native/, docs/data-path.md: recvmmsg/sendmmsg into slabs allocated once here) or, when the addon
 * is missing or LANPARTY_NO_NATIVE=1, by node:dgram delivering batches of one (addon.ts loads
 * the addon). Transports call openBatchSocket and never learn which one they got,
 * except through `native` (for status) and the unix-datagram limitation of the fallback.
 *
 * Native receive: the addon fills rx.bufs[i] / rx.lengths[i] / rx.peers[i] and calls onBatch(count).
 * Native send stages:
 *   1. send() notes (offset, length, peer, source) in typed arrays. A frame that lies in the rx slab
 *      of a native socket (a frame being forwarded) is not copied: the source is that slab's id and
 *      the addon reads it there at flush, which runs before that socket can receive again (see
 *      docs/data-path.md). Any other frame is copied into the tx slab first (one native memcpy call,
 *      no allocation), since the caller's buffer is only ours for the call.
 *   2. The first send of a tick schedules one flush with queueMicrotask (flush bound once).
 *   3. flush() hands the count to the addon: one sendmmsg for the lot; a full queue flushes early.
 *   4. Unix datagram sockets only: a datagram refused with EAGAIN (that receiver's queue is full;
 *      Linux queues only net.unix.max_dgram_qlen = 10 per receiver) waits in a bounded per-peer
 *      backlog in the addon, sent in order when the receiver has room (as QEMU itself does). A full
 *      backlog (1024 datagrams or 2 MiB) drops the newest, counted in stats.sendDropped;
 *      stats.sendQueued is how many wait right now. UDP keeps dropping on EAGAIN.
 *   5. Flow control, unix datagram sockets opened with flowControl (default: off, unless
 *      LANPARTY_UNIX_FLOW_CONTROL=1): a backlog a quarter full stops the unix socket its frames
 *      came from reading until it drains (its senders wait in their own queues, as they would
 *      sending to the slow receiver directly), at most 200 ms per wait; a receiver that holds one
 *      that long is stuck and holds nobody until its backlog empties. Counted in stats.flowPauses
 *      and stats.flowTimeouts. Off by default because one socket carries every guest of a
 *      unixgram port: pausing it holds back all of them, not only the one sending to the slow
 *      reader (bench/tools/hol-unixgram.sh: another guest's ping p99 went from 0.1 to 14-22 ms during such a flood).
 * Peer ids: the addon's PeerTable (keyed hash, random key per process) or the fallback's maps name
 * each source address; an id lives until the owner releases it (native: after the next flush, so
 * datagrams queued to it still go) or, when the owner opted in, until the full table evicts it
 * (least recently heard first) and the owner is told, before the batch that needed the room.
 * Counters live in a Float64Array the addon writes directly; `stats` reads them.
 */
import { LanpartyError } from '../util/index.js';
import type { BatchSocket, BatchSocketOptions, SocketStats } from './types.js';
import { loadNative, nativeAvailable, nativeLoadError } from './addon.js';
import { describeBind, normalise } from './options.js';
import { NativeBatchSocket } from './dgram-native.js';
import { openJs } from './dgram-js.js';

/** Which implementation to use; openBatchSocket picks 'native' when it is available. */
export type BatchImplementation = 'native' | 'js';


/**
 * Opens and binds a batch socket with the native addon when available, else node:dgram.
 * Rejects with the errno error (`.code` EADDRINUSE, EACCES, ENOENT, ENODEV, ...; `.syscall` set;
 * the message names the address), or LanpartyError LP_ERR_NATIVE for a unix socket without the addon.
 *
 * Every peer id in rx.peers is valid (>= 0, peerAddress works). Datagrams whose source cannot be
 * given one (an unbound unix sender, or a full table: maxPeers live ids, default MAX_PEERS, without
 * eviction) are dropped and counted in `stats.unaddressable`. Ids live until the owner releases
 * them or is told of their eviction (see BatchSocket.peerId, releasePeer, onPeerEvicted). Beyond the BatchSocket interface, `stats` also has `sendDropped`: the
 * part of `sendErrors` lost to a full queue (EAGAIN/ENOBUFS) rather than a fault, and (native)
 * `sendQueued`: unix datagrams waiting in per-peer backlogs for a slow receiver (see step 4 above).
 * A unix socket with backlogged datagrams keeps the event loop alive until they leave or close().
 * The socket path of a unix socket is never unlinked here; its owner removes it.
 */
export function openBatchSocket(opts: BatchSocketOptions): Promise<BatchSocket> {
  return openBatchSocketWith(nativeAvailable() ? 'native' : 'js', opts);
}

/** Like openBatchSocket with the implementation chosen by the caller (tests run both). */
export function openBatchSocketWith(impl: BatchImplementation, opts: BatchSocketOptions): Promise<BatchSocket> {
  try {
    const o = normalise(opts);
    if (impl === 'js') return openJs(o);
    const mod = loadNative();
    if (mod === null) {
      return Promise.reject(new LanpartyError('LP_ERR_NATIVE', `batch socket ${describeBind(opts)}: ${nativeLoadError() ?? 'native addon unavailable'}`));
    }
    return Promise.resolve(new NativeBatchSocket(mod, o));
  } catch (err) {
    return Promise.reject(err);
  }
}

/** A plain copy of a socket's counters for status (null: no socket open). */
export function socketStatsOf(...socks: Array<BatchSocket | null>): SocketStats | null {
  const open = socks.filter((x): x is BatchSocket => x !== null);
  if (open.length === 0) return null;
  const sum = (k: keyof SocketStats) => open.reduce((a, x) => a + x.stats[k], 0);
  return {
    sendErrors: sum('sendErrors'), sendDropped: sum('sendDropped'), sendQueued: sum('sendQueued'),
    recvErrors: sum('recvErrors'), truncated: sum('truncated'), unaddressable: sum('unaddressable'),
    notAccepted: sum('notAccepted'), flowPauses: sum('flowPauses'), flowTimeouts: sum('flowTimeouts'),
    peers: sum('peers'), peersEvicted: sum('peersEvicted'),
  };
}
