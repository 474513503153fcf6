// lanparty_native: batched datagram I/O, TAP device I/O, stream port reads, and the peer links'
// ChaCha20-Poly1305 (the last three near the end of the file), for src/transports/batch-io.ts,
// and nothing more.
//
// The addon owns a non-blocking AF_INET or AF_UNIX SOCK_DGRAM socket and moves datagrams between
// it and memory that JS allocated once (slabs and typed arrays handed over at construction). It
// never allocates per datagram and never builds a JS value per datagram.
//
// Receive stages (one libuv wakeup):
//   1. uv_poll_t reports the fd readable (level-triggered).
//   2. recvmmsg(MSG_DONTWAIT) fills up to batchSize slots of the rx slab (slot i at i*slotBytes).
//   3. Datagrams flagged MSG_TRUNC are dropped and counted; later slots are moved down (rare path).
//   4. Each source sockaddr is mapped to a small peer id through the peer table (a new id is the
//      only case that may allocate; JS asks for the id's address once, when it first sees the id).
//      Ids live until JS releases them; a full table refuses new sources or, when JS opted in,
//      evicts the least recently heard one and reports it (PeerTable, near the top). A source
//      with no id (unbound unix sender, table full) is dropped and counted the same way.
//   5. lengths[] and peers[] are filled and the JS callback gets the count (MakeCallback, so the
//      microtask queue, where JS schedules its send flush, drains before the slots are reused).
//   6. Repeat from 2 until EAGAIN, a short batch, or kMaxBatchesPerWakeup batches (fairness with
//      the other sockets on the loop; level triggering brings us back).
//   7. With busy polling on (setBusyPoll; lanparty up turns it on unless --busy-poll 0), BusySpin()
//      then keeps reading every socket and TAP device for a while before libuv sleeps again, at
//      a light load only (see BusyPollable). Stream ports' connections are read here too
//      (StreamReader, near the end), so a spin reads them the same way.
//
// Send stages:
//   1. copyIn() memcpys each frame into the tx slab; JS records (offset, length, peer id, source 0)
//      in typed arrays shared with this file. A frame that lies in another BatchSocket's rx slab
//      (a frame being forwarded, the common case) is not copied at all: JS records that slab's id
//      (rxSlabId(), from the registry below) as its source and its offset there, with no call into
//      the addon. This is safe because the slot is rewritten only by that socket's next recvmmsg,
//      and receive stage 5 drains the microtasks, where every flush runs, before that; the slab's
//      memory is held (memory_) until the socket that owns it is destroyed, and a flush finding the
//      id unregistered counts the datagram in kSendErrors instead of reading freed memory.
//   2. Once per tick (queueMicrotask) or when the queue fills, JS calls flush(count): one iovec per
//      datagram and one mmsghdr per message, then sendmmsg until everything is sent, dropped or
//      backlogged. The socket never blocks. On UDP, consecutive datagrams to the same peer with the
//      same length (the last may be shorter) share one message with UDP GSO (a UDP_SEGMENT cmsg,
//      Linux >= 4.18): the kernel walks routing, netfilter and the device once per message instead
//      of once per datagram and cuts the datagrams apart on the way out, so the receiver (QEMU,
//      another lanparty) still gets one datagram per frame, byte for byte what it got without GSO.
//      A message the path refuses (EINVAL: segment larger than the path MTU; EIO: no checksum
//      offload) is resent one datagram per message, and GSO stays off for segments that large.
//   3. UDP: EAGAIN/ENOBUFS means our own send buffer is full; the rest is a counted drop (Ethernet
//      is lossy). Unix: EAGAIN usually means that one receiver's queue is full, and Linux lets a unix
//      datagram receiver queue only net.unix.max_dgram_qlen (default 10) datagrams, so a burst of
//      more than 10 frames to one QEMU guest would lose the rest. QEMU itself queues on EAGAIN and
//      waits, and so do we (PeerBacklog below): that peer's remaining datagrams go into a bounded
//      per-peer ring (kBacklogDatagrams datagrams or kBacklogBytes bytes, whichever first; when it
//      is full the NEWEST datagram is dropped and counted in kSendDropped, so memory never grows
//      without bound). Once a peer has a backlog, later datagrams to it join the backlog, so order
//      per peer is kept.
//   4. Wakeup for a backlogged peer: an unconnected AF_UNIX SOCK_DGRAM socket's POLLOUT reflects
//      only our own send buffer, never the receiver's queue. A socket *connected* to the peer's
//      path does: Linux's unix_dgram_poll reports it not writable while the peer's queue is full
//      and wakes it (unix_dgram_peer_wake_relay) when the peer reads. So each backlogged peer gets
//      (lazily, once) a non-blocking, unbound socket connected to its path, used ONLY as a doorbell
//      (uv_poll UV_WRITABLE, never sent on): the datagrams still leave through the bound main socket
//      with sendmmsg(peer path), so the receiver sees the usual source address (a lanparty receiver
//      drops unbound senders as unaddressable, and QEMU replies to remote.path anyway).
//      If the doorbell says "writable" yet the send still gets EAGAIN, the full buffer is our own
//      (every datagram sitting in a receiver's queue is charged to the sender's SO_SNDBUF): the peer
//      then waits for the main socket's own UV_WRITABLE instead.
//   5. A peer whose path vanished (ENOENT/ECONNREFUSED on connect or send: the guest exited) loses
//      its backlog, counted in kSendErrors; its next datagram is tried afresh (a restarted QEMU
//      rebinds the path; a doorbell still connected to the old socket is reconnected on suspicion).
//   6. Flow control (unix sockets opened with flowControl; lanparty leaves it off unless
//      LANPARTY_UNIX_FLOW_CONTROL=1, see the cost below): a unix datagram sender can be held back
//      where a UDP one cannot (a full unix
//      receiver queue makes the sender wait, and QEMU then stops taking frames from its guest,
//      which TCP in the guest feels as a slower path, not as loss). So when a frame forwarded from
//      a unix socket's rx slab finds its destination's backlog a quarter full (kFlowPauseDatagrams
//      or kFlowPauseBytes), that unix socket stops reading (its poll drops UV_READABLE, the busy
//      spin skips it) until the backlog is back to a sixteenth: its senders then wait in their own
//      queues, as they would sending straight to the slow receiver. Ethernet's PAUSE, with the
//      watchdog of data-centre PFC: a backlog that holds a socket kFlowPauseMaxMs without draining
//      that far is stuck (a receiver that stopped reading, or two switches each waiting for the
//      other) and holds nobody until it has emptied; it then drops at its bounds, as in stage 3.
//      Counted in kFlowPauses and kFlowTimeouts. The cost is head-of-line blocking: while one
//      receiver is slow, every sender into the paused socket waits, up to the watchdog, and one
//      unixgram port's socket carries all its guests (measured: a ping between two other guests
//      went from p99 0.1 ms to 14-22 ms while one guest flooded a slow one: bench/tools/hol-unixgram.sh).
//   close() drops every backlog (counted in kSendDropped) and closes the doorbells.
//
// Errors at setup are thrown as JS errors shaped like Node's: `.code` is the errno name
// (EADDRINUSE, ENOENT, ...), `.errno` is the negative errno, `.syscall` and `.address` are set, and
// the message names the socket address. Close stops the poll handle (uv_close) and unlinks nothing:
// the owner of a unix socket path removes it.

#if !defined(__linux__)
#error "lanparty_native needs Linux (recvmmsg/sendmmsg); batch-io.ts falls back to node:dgram elsewhere"
#endif

#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <poll.h>
#include <sched.h>
#include <time.h>
#include <linux/filter.h>

// Node ships OpenSSL's headers with its own (include/node/openssl); the peer links' AEAD uses them.
#if __has_include(<openssl/evp.h>)
#include <openssl/evp.h>
#define LP_HAVE_OPENSSL 1
#else
#define LP_HAVE_OPENSSL 0
#endif

#include <sys/random.h>

#include <cstdint>
#include <memory>
#include <random>
#include <mutex>
#include <string>
#include <vector>

namespace {

// Most recvmmsg batches handled per wakeup before yielding to the rest of the event loop.
constexpr int kMaxBatchesPerWakeup = 8;
// Longest busy-poll spin before libuv gets the thread back (timers, streams, the control socket).
constexpr int64_t kBusyPollMaxUs = 1000;
// Most idle spinning the busy-poll budget lets accumulate (a burst after a quiet spell).
constexpr int64_t kBusyPollBurstUs = 20000;
// Busy polling is for a light load: above this many frames a second through the native sockets
// and TAPs (measured over kBusyPollRateWindowUs) it does not spin. There frames come faster than a
// wake-up costs, libuv rarely sleeps, and a spin only takes CPU from the processes that send
// them: TCG guests on a small host ran iperf3 at 0.80x through a spinning lanparty (bench/RESULTS.md).
constexpr double kBusyPollMaxRate = 10000;
constexpr int64_t kBusyPollRateWindowUs = 20000;
// Nor after a wakeup that read more than this many frames (they queued), and a spin ends once it
// has read more than this many: request/response traffic brings a reply or a few, a stream brings
// more, and a spin then reads it in small batches, each with its own poll(2) and recvmmsg, which
// is slower than libuv's wait (measured: udp 64 B lossless rate 0.81-0.94x while the first rate
// window spun). This answers within microseconds, before the rate window has been measured.
constexpr int kBusyPollMaxBatch = 4;
// Upper bound on live peer ids per socket (a socket may be opened with a smaller maxPeers); beyond
// it a new source gets id -1, or evicts the least recently heard one (PeerTable), so a flood of
// spoofed sources cannot grow memory without limit.
constexpr int kMaxPeers = 65536;
// Evicted ids that JS has not released yet, at most (PeerTable); the id space is the live ids
// plus these.
constexpr int kEvictedMax = 1024;
constexpr int kMaxPeerIds = kMaxPeers + kEvictedMax;
// Largest batch accepted for either direction (the kernel's UIO_MAXIOV).
constexpr int kMaxBatch = 1024;
// Per-peer unix send backlog bounds (see the header): whichever is reached first. The byte ring is
// allocated when a backlog starts and freed when it drains, so memory is at most kBacklogBytes per
// peer that is backlogged right now. 1024 datagrams is about a NIC's txqueuelen (1000): it rides out
// a receiver descheduled for a few milliseconds at full rate (7 ms at 150k frames/s), where 256
// lost frames on this 2-vCPU machine in 2 of 5 trials at 150k frames/s of 1514 bytes.
constexpr int kBacklogDatagrams = 1024;
constexpr size_t kBacklogBytes = 2u << 20;
// Flow control between unix datagram sockets (send stage 6 in the header): a backlog this deep
// (datagrams or bytes: a quarter of its bounds) stops the unix socket that its datagrams came
// from reading, until it is back down to the resume marks; a backlog that holds a socket paused
// for kFlowPauseMaxMs without draining that far is stuck and holds nobody until it empties.
constexpr int kFlowPauseDatagrams = kBacklogDatagrams / 4;
constexpr size_t kFlowPauseBytes = kBacklogBytes / 4;
constexpr int kFlowResumeDatagrams = kBacklogDatagrams / 16;
constexpr size_t kFlowResumeBytes = kBacklogBytes / 16;
constexpr uint64_t kFlowPauseMaxMs = 200;
// Datagrams handed to one sendmmsg call when draining a backlog (also the scratch size used to
// resend a refused GSO message one datagram at a time, so it must be >= kGsoMaxSegments).
constexpr int kBacklogSendBatch = 64;
// UDP GSO (send stage 2): at most this many datagrams, and this many payload bytes, per message.
// Linux accepts 64 segments (UDP_MAX_SEGMENTS, 128 on newer kernels) and one IPv4 datagram's worth
// of payload (65507 bytes).
constexpr int kGsoMaxSegments = 64;
constexpr size_t kGsoMaxBytes = 65000;
static_assert(kBacklogSendBatch >= kGsoMaxSegments, "SendOneByOne reuses the backlog scratch headers");
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

// Slots of the shared counters Float64Array; batch-io.ts reads them by the same indexes.
enum CounterIndex {
  kSendErrors = 0,   // every datagram not sent, EAGAIN drops included
  kRecvErrors = 1,
  kTruncated = 2,
  kSendDropped = 3,  // the EAGAIN/ENOBUFS subset of kSendErrors (a full queue, not a fault)
  kUnaddressable = 4,  // received from an unbound unix socket, or with the peer table full
  kSendQueued = 5,     // gauge: datagrams waiting in unix peer backlogs right now
  kGsoMessages = 6,    // UDP GSO messages sent (each carried 2..kGsoMaxSegments datagrams)
  kGsoDatagrams = 7,   // datagrams those messages carried
  kFlowPauses = 8,     // times one of this socket's backlogs stopped a unix socket reading (stage 6)
  kFlowTimeouts = 9,   // backlogs that held one kFlowPauseMaxMs without draining (stuck)
  kPeersLive = 10,     // gauge: peer ids in use (PeerTable), evicted ones not yet released included
  kPeersEvicted = 11,  // ids evicted because the table was full (least recently heard first)
  kNotAccepted = 12,   // udp4: from a source outside the accept list (acceptSources), dropped
  kCounterCount = 13,
};

enum class Kind { kInet, kUnix };

// Builds an error like Node's UVException: "bind EADDRINUSE 127.0.0.1:5555".
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& where) {
  const char* name = uv_err_name(-err);  // libuv on Unix: UV_Exxx == -Exxx.
  std::string msg = std::string(syscall) + " " + name + " " + where;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, name));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.Set("address", Napi::String::New(env, where));
  return e;
}

// A peer address in canonical form, so that equal addresses compare equal byte for byte.
struct PeerAddr {
  sockaddr_storage addr;
  socklen_t len;
};

// Canonicalises a received or constructed sockaddr. Returns false for addresses that cannot be
// replied to (an unbound unix sender, an unknown family).
bool Canonical(const sockaddr_storage& in, socklen_t inLen, PeerAddr* out) {
  memset(&out->addr, 0, sizeof(out->addr));
  if (in.ss_family == AF_INET && inLen >= sizeof(sockaddr_in)) {
    const sockaddr_in* s = reinterpret_cast<const sockaddr_in*>(&in);
    sockaddr_in* d = reinterpret_cast<sockaddr_in*>(&out->addr);
    d->sin_family = AF_INET;
    d->sin_port = s->sin_port;
    d->sin_addr = s->sin_addr;
    out->len = sizeof(sockaddr_in);
    return true;
  }
  if (in.ss_family == AF_UNIX) {
    constexpr socklen_t kPathOff = offsetof(sockaddr_un, sun_path);
    if (inLen <= kPathOff) return false;  // Unnamed sender: no address to reply to.
    if (inLen > sizeof(sockaddr_un)) inLen = sizeof(sockaddr_un);
    const sockaddr_un* s = reinterpret_cast<const sockaddr_un*>(&in);
    sockaddr_un* d = reinterpret_cast<sockaddr_un*>(&out->addr);
    d->sun_family = AF_UNIX;
    size_t pathMax = inLen - kPathOff;
    if (s->sun_path[0] != '\0') {
      // Pathname socket: Linux reports strlen + 1, but be exact about the NUL either way.
      size_t n = strnlen(s->sun_path, pathMax);
      if (n >= sizeof(d->sun_path)) return false;
      memcpy(d->sun_path, s->sun_path, n);
      out->len = static_cast<socklen_t>(kPathOff + n + 1);
    } else {
      // Abstract socket: every byte of the reported length is part of the name.
      memcpy(d->sun_path, s->sun_path, pathMax);
      out->len = inLen;
    }
    return true;
  }
  return false;
}

// SipHash-1-3 (Aumasson and Bernstein; the variant Rust's HashMap and CPython use for tables that
// take untrusted keys): a keyed 64-bit hash, so a sender cannot choose addresses that collide in
// the peer table without knowing the key, which is random per process (PeerHashKey).
inline uint64_t Rotl64(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

inline void SipRound(uint64_t& v0, uint64_t& v1, uint64_t& v2, uint64_t& v3) {
  v0 += v1; v1 = Rotl64(v1, 13); v1 ^= v0; v0 = Rotl64(v0, 32);
  v2 += v3; v3 = Rotl64(v3, 16); v3 ^= v2;
  v0 += v3; v3 = Rotl64(v3, 21); v3 ^= v0;
  v2 += v1; v1 = Rotl64(v1, 17); v1 ^= v2; v2 = Rotl64(v2, 32);
}

uint64_t SipHash13(uint64_t k0, uint64_t k1, const uint8_t* p, size_t n) {
  uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
  uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
  uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
  uint64_t v3 = k1 ^ 0x7465646279746573ull;
  const uint8_t* end = p + (n & ~static_cast<size_t>(7));
  for (; p != end; p += 8) {
    uint64_t m;
    memcpy(&m, p, 8);  // little-endian hosts (Linux on x86-64 and arm64); the key is random anyway
    v3 ^= m;
    SipRound(v0, v1, v2, v3);
    v0 ^= m;
  }
  uint64_t b = static_cast<uint64_t>(n) << 56;
  switch (n & 7) {
    case 7: b |= static_cast<uint64_t>(p[6]) << 48; [[fallthrough]];
    case 6: b |= static_cast<uint64_t>(p[5]) << 40; [[fallthrough]];
    case 5: b |= static_cast<uint64_t>(p[4]) << 32; [[fallthrough]];
    case 4: b |= static_cast<uint64_t>(p[3]) << 24; [[fallthrough]];
    case 3: b |= static_cast<uint64_t>(p[2]) << 16; [[fallthrough]];
    case 2: b |= static_cast<uint64_t>(p[1]) << 8; [[fallthrough]];
    case 1: b |= static_cast<uint64_t>(p[0]); break;
    default: break;
  }
  v3 ^= b;
  SipRound(v0, v1, v2, v3);
  v0 ^= b;
  v2 ^= 0xff;
  SipRound(v0, v1, v2, v3);
  SipRound(v0, v1, v2, v3);
  SipRound(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

// The peer tables' hash key: 128 random bits drawn once per process (getrandom, else
// std::random_device), so bucket collisions cannot be planned from outside.
struct PeerHashKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
  PeerHashKey() {
    uint64_t k[2] = {0, 0};
    if (getrandom(k, sizeof(k), 0) != static_cast<ssize_t>(sizeof(k))) {
      std::random_device rd;
      k[0] = (static_cast<uint64_t>(rd()) << 32) ^ rd();
      k[1] = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    }
    k0 = k[0];
    k1 = k[1];
  }
};

const PeerHashKey& HashKey() {
  static const PeerHashKey key;
  return key;
}

// Peer table: canonical sockaddr -> small int id, for one socket. An id is live from the first
// datagram (or peerId call) until the owner releases it (release(id) from JS: the dgram port aged
// the peer out, a WireGuard port never authenticated the source) or the table evicts it.
//   - At most `limit` ids are live (kMaxPeers unless the socket was opened with a smaller
//     maxPeers). A new source beyond that gets no id (-1, counted as unaddressable), unless the
//     owner opted in to eviction: then the least recently heard live id that is not pinned (an
//     id JS asked for with peerId, such as a fixed peer or a configured endpoint) and was not
//     heard in the batch being received is evicted to make room.
//   - An evicted id is not reused at once: it leaves the hash (its address gets a new id if heard
//     again) but keeps its address for sends JS queued before it learnt of the eviction. Its id is
//     reported in the socket's evicted list, which JS drains before the batch that needed the room
//     (and after a peerId call), dropping what it keeps for that id and releasing it. Only a
//     released id is reused, so JS never sees one id mean two addresses. At most kEvictedMax ids
//     wait for that; with the list full, new sources are refused instead.
// Open addressing with linear probing over an index array of (id, hash) (power-of-two size, at
// most half full; removal shifts the run back, so there are no tombstones). Lookups never
// allocate; a new id may grow the arrays (bounded by kMaxPeerIds).
class PeerTable {
 public:
  PeerTable() : index_(64) {}

  void SetLimit(int limit) { limit_ = limit < 1 ? 1 : (limit > kMaxPeers ? kMaxPeers : limit); }
  // A new receive batch: ids heard from now on are not evicted until the next one.
  void NextRound() { round_++; }
  int Live() const { return live_; }

  // The id for addr, creating one if needed; -1 when there is no room. `pin`: JS asked for it (a
  // pinned id is never evicted). `heard`: a datagram from it is being received (LRU order).
  int Intern(const PeerAddr& p, bool pin, bool heard) {
    uint32_t h = Hash(p);
    size_t mask = index_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      int id = index_[i].id;
      if (id < 0) break;
      if (index_[i].hash != h) continue;
      const PeerAddr& q = peers_[id];
      if (q.len == p.len && memcmp(&q.addr, &p.addr, p.len) == 0) {
        if (pin && !pinned_[id]) {
          Unlink(id);
          pinned_[id] = 1;
        } else if (heard && !pinned_[id]) {
          Touch(id);
        }
        return id;
      }
    }
    if (live_ >= limit_ && !EvictOne()) return -1;
    int id;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
    } else if (static_cast<int>(peers_.size()) < kMaxPeerIds) {
      id = static_cast<int>(peers_.size());
      peers_.push_back(p);
      state_.push_back(kFree);
      pinned_.push_back(0);
      prev_.push_back(-1);
      next_.push_back(-1);
      heardRound_.push_back(0);
    } else {
      return -1;
    }
    peers_[id] = p;
    state_[id] = kLive;
    pinned_[id] = pin ? 1 : 0;
    heardRound_[id] = round_;
    prev_[id] = next_[id] = -1;
    if (!pin) Append(id);
    live_++;
    if (static_cast<size_t>(live_) * 2 > index_.size()) {
      Rehash(index_.size() * 2);
    } else {
      Place(id, h);
    }
    return id;
  }

  // The address of a live or evicted (not yet released) id, else null.
  const PeerAddr* Get(int id) const {
    if (id < 0 || id >= static_cast<int>(peers_.size()) || state_[id] == kFree) return nullptr;
    return &peers_[id];
  }

  // Forgets id (live or evicted) and makes it reusable. False when it was not in use.
  bool Release(int id) {
    if (id < 0 || id >= static_cast<int>(peers_.size()) || state_[id] == kFree) return false;
    if (state_[id] == kLive) {
      Unindex(id);
      if (!pinned_[id]) Unlink(id);
      live_--;
    } else {
      evictedWaiting_--;
    }
    state_[id] = kFree;
    pinned_[id] = 0;
    free_.push_back(id);
    return true;
  }

  // Opts in to eviction: evicted ids are reported in report[1..report[0]] (kEvictedMax + 1
  // int32s, JS-owned; JS reads them, sets report[0] to 0 and releases each id).
  void SetEviction(int32_t* report) {
    report_ = report;
    if (report_) report_[0] = 0;
  }
  // Evicted ids not released yet.
  int EvictedWaiting() const { return evictedWaiting_; }

  uint64_t evictions = 0;

 private:
  enum State : uint8_t { kFree = 0, kLive = 1, kEvicted = 2 };
  struct Slot {
    int32_t id = -1;
    uint32_t hash = 0;
  };

  static uint32_t Hash(const PeerAddr& p) {
    const PeerHashKey& k = HashKey();
    return static_cast<uint32_t>(SipHash13(k.k0, k.k1, reinterpret_cast<const uint8_t*>(&p.addr), p.len));
  }

  bool EvictOne() {
    if (!report_ || evictedWaiting_ >= kEvictedMax) return false;
    int32_t reported = report_[0];
    if (reported < 0 || reported >= kEvictedMax) return false;  // JS broke the contract: refuse
    int id = lruHead_;
    if (id < 0 || heardRound_[id] == round_) return false;  // nothing evictable, or all heard just now
    Unindex(id);
    Unlink(id);
    state_[id] = kEvicted;
    live_--;
    evictedWaiting_++;
    report_[1 + reported] = id;
    report_[0] = reported + 1;
    evictions++;
    return true;
  }

  // LRU list of live, unpinned ids: head least recently heard, tail most.
  void Append(int id) {
    prev_[id] = lruTail_;
    next_[id] = -1;
    if (lruTail_ >= 0) next_[lruTail_] = id; else lruHead_ = id;
    lruTail_ = id;
  }
  void Unlink(int id) {
    int p = prev_[id], n = next_[id];
    if (p >= 0) next_[p] = n; else if (lruHead_ == id) lruHead_ = n;
    if (n >= 0) prev_[n] = p; else if (lruTail_ == id) lruTail_ = p;
    prev_[id] = next_[id] = -1;
  }
  void Touch(int id) {
    heardRound_[id] = round_;
    if (lruTail_ == id) return;
    Unlink(id);
    Append(id);
  }

  void Place(int id, uint32_t h) {
    size_t mask = index_.size() - 1;
    size_t i = h & mask;
    while (index_[i].id >= 0) i = (i + 1) & mask;
    index_[i].id = id;
    index_[i].hash = h;
  }
  // Removes id from the index, shifting later entries of its run back (no tombstones).
  void Unindex(int id) {
    uint32_t h = Hash(peers_[id]);
    size_t mask = index_.size() - 1;
    size_t i = h & mask;
    while (index_[i].id != id) {
      if (index_[i].id < 0) return;  // not indexed
      i = (i + 1) & mask;
    }
    size_t j = i;
    for (;;) {
      index_[i].id = -1;
      for (;;) {
        j = (j + 1) & mask;
        if (index_[j].id < 0) return;
        size_t home = index_[j].hash & mask;
        // Entry j may fill the hole at i unless its home lies cyclically in (i, j].
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) break;
      }
      index_[i] = index_[j];
      i = j;
    }
  }
  void Rehash(size_t size) {
    index_.assign(size, Slot());
    for (int id = 0; id < static_cast<int>(peers_.size()); id++) {
      if (state_[id] == kLive) Place(id, Hash(peers_[id]));
    }
  }

  std::vector<Slot> index_;
  std::vector<PeerAddr> peers_;
  std::vector<uint8_t> state_;
  std::vector<uint8_t> pinned_;
  std::vector<int32_t> prev_;
  std::vector<int32_t> next_;
  std::vector<uint32_t> heardRound_;
  std::vector<int32_t> free_;
  int32_t* report_ = nullptr;  // eviction on when set (see SetEviction)
  int evictedWaiting_ = 0;
  int lruHead_ = -1;
  int lruTail_ = -1;
  int live_ = 0;
  int limit_ = kMaxPeers;
  uint32_t round_ = 1;
};

class BatchSocket;

// Busy polling (setBusyPoll(us); `lanparty up --busy-poll US`): after a libuv wakeup that
// delivered frames, BusySpin() keeps polling every started socket and TAP device (poll(2) with a
// zero timeout, sched_yield() between passes) until g_busy.us microseconds pass without a frame,
// and at most kBusyPollMaxUs in all, before it gives the thread back to libuv. The other half of a
// round trip through the switch (the reply to the frame just forwarded) is then read at once: the
// scheduler does not have to wake this process again. On a VM that wake-up is what makes the
// latency's tail (an idle vCPU halts, and waking it goes through the hypervisor). The yield
// matters: on a machine with few CPUs the process we wait for may be queued on ours, and a spinner
// that held the CPU would delay the very reply it waits for.
class BusyPollable {
 public:
  virtual int BusyFd() const = 0;  // the fd to poll, or -1 while it must not be read
  virtual int BusyReceive() = 0;   // reads what is there (one wakeup's worth); frames delivered
  // True while it waits for libuv to say it may send (a unix peer's backlog waits on its
  // doorbell): the spin must stop, or the backlog would not drain while frames keep arriving.
  virtual bool BusyWaitsOnLoop() const { return false; }
 protected:
  ~BusyPollable() = default;
};

// The CPU it may burn is budgeted: only the idle part of a spin (polling and finding nothing; the
// frames it reads would have cost the same after a wake-up) is charged to a token bucket that
// refills at budgetPerMille of one core and holds at most kBusyPollBurstUs. With less than one
// spin's worth (us) in the bucket, wakeups sleep as usual. So a quiet LAN costs nothing,
// request/response traffic (a game, a ping) is served from the bucket, and a steady stream costs
// at most the budget.
struct BusyPoll {
  int64_t us = 0;                        // 0: off
  int64_t budgetPerMille = 200;          // share of one core the idle spinning may use
  int64_t tokensUs = 0;                  // the bucket
  int64_t refilledAt = 0;                // MonoUs() of the last refill
  bool spinning = false;                 // a callback inside BusySpin must not start another
  std::vector<BusyPollable*> members;    // started and not closed
  uint64_t leaves = 0;                   // members that left so far (a pass rechecks only after one)
  std::vector<pollfd> fds;               // scratch, rebuilt each pass
  std::vector<BusyPollable*> polled;     // scratch: polled[i] owns fds[i]
  double spins = 0;                      // spins started
  double frames = 0;                     // frames read while spinning (each one a wakeup saved)
  double idleUs = 0;                     // µs spent spinning without frames (the CPU it cost)
  double skipped = 0;                    // spins not started: the budget was spent
  double loaded = 0;                     // spins not started: frames came faster than kBusyPollMaxRate, or in a batch
  int64_t windowStart = 0;               // MonoUs() when the rate window began
  int64_t lastDelivery = 0;              // MonoUs() of the last wakeup with frames
  double windowFrames = 0;               // frames delivered in it
  double rate = 0;                       // frames/s over the last whole window
};
BusyPoll g_busy;

void BusyJoin(BusyPollable* m) { g_busy.members.push_back(m); }

void BusyLeave(BusyPollable* m) {
  for (size_t i = 0; i < g_busy.members.size(); i++) {
    if (g_busy.members[i] != m) continue;
    g_busy.members.erase(g_busy.members.begin() + static_cast<std::ptrdiff_t>(i));
    g_busy.leaves += 1;
    return;
  }
}

int64_t MonoUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// Called after a wakeup delivered `delivered` frames.
void BusySpin(int delivered) {
  if (g_busy.us <= 0 || g_busy.spinning) return;
  const int64_t start = MonoUs();
  // A window ends at the first wakeup after it; a whole window without frames is light again,
  // whatever came before.
  const bool quiet = start - g_busy.lastDelivery >= kBusyPollRateWindowUs;
  if (quiet || start - g_busy.windowStart >= kBusyPollRateWindowUs) {
    g_busy.rate = quiet ? 0 : g_busy.windowFrames * 1e6 / static_cast<double>(start - g_busy.windowStart);
    g_busy.windowStart = start;
    g_busy.windowFrames = 0;
  }
  g_busy.lastDelivery = start;
  g_busy.windowFrames += delivered;
  if (g_busy.rate > kBusyPollMaxRate || delivered > kBusyPollMaxBatch) {
    g_busy.loaded += 1;
    return;
  }
  g_busy.tokensUs += (start - g_busy.refilledAt) * g_busy.budgetPerMille / 1000;
  if (g_busy.tokensUs > kBusyPollBurstUs) g_busy.tokensUs = kBusyPollBurstUs;
  g_busy.refilledAt = start;
  if (g_busy.tokensUs < g_busy.us) {  // Not enough for a whole spin: sleep, let it refill.
    g_busy.skipped += 1;
    return;
  }
  g_busy.spinning = true;
  g_busy.spins += 1;
  int64_t last = start;
  int64_t busyUs = 0;  // time inside BusyReceive (frames), not charged
  int read = 0;  // frames read while spinning
  while (read <= kBusyPollMaxBatch) {
    const int64_t now = MonoUs();
    if (now - last > g_busy.us || now - start > kBusyPollMaxUs) break;
    if ((now - start) - busyUs >= g_busy.tokensUs) break;
    bool waits = false;
    g_busy.fds.clear();
    g_busy.polled.clear();
    for (BusyPollable* m : g_busy.members) {
      waits = waits || m->BusyWaitsOnLoop();
      int fd = m->BusyFd();
      if (fd < 0) continue;
      g_busy.fds.push_back(pollfd{fd, POLLIN, 0});
      g_busy.polled.push_back(m);
    }
    if (waits || g_busy.fds.empty()) break;
    if (poll(g_busy.fds.data(), g_busy.fds.size(), 0) <= 0) {
      sched_yield();
      continue;
    }
    const uint64_t leaves = g_busy.leaves;
    for (size_t i = 0; i < g_busy.polled.size(); i++) {
      if (!(g_busy.fds[i].revents & (POLLIN | POLLERR))) continue;
      BusyPollable* m = g_busy.polled[i];
      // An earlier callback in this pass may have closed it (it then left the members): look it
      // up only when someone left, so a pass stays linear in the members.
      if (g_busy.leaves != leaves) {
        bool member = false;
        for (BusyPollable* x : g_busy.members) member = member || x == m;
        if (!member) continue;
      }
      if (m->BusyFd() < 0) continue;
      const int64_t before = MonoUs();
      int n = m->BusyReceive();
      if (n > 0) {
        last = MonoUs();
        busyUs += last - before;
        g_busy.frames += n;
        g_busy.windowFrames += n;
        read += n;
      }
    }
  }
  const int64_t idle = (MonoUs() - start) - busyUs;
  g_busy.tokensUs -= idle;
  g_busy.idleUs += static_cast<double>(idle);
  g_busy.spinning = false;
}

// One unix peer's send backlog: a FIFO of datagrams in a byte ring (each datagram contiguous; a
// datagram that does not fit before the end starts again at 0), plus the doorbell socket connected
// to the peer's path and its poll handle. Never allocates per datagram.
struct PeerBacklog {
  BatchSocket* owner = nullptr;
  int peer = -1;
  int doorbell = -1;         // connected to the peer's path, only polled, never sent on
  uv_poll_t* poll = nullptr; // on doorbell; active only while waiting for the peer's queue
  bool pollActive = false;
  bool waitingOnSelf = false;  // waiting for the main socket's own send buffer instead
  std::unique_ptr<uint8_t[]> buf;
  uint32_t off[kBacklogDatagrams];
  uint32_t len[kBacklogDatagrams];
  int head = 0;
  int count = 0;
  size_t wr = 0;  // where the newest datagram ends
  size_t bytes = 0;  // payload bytes waiting
  // Flow control (send stage 6): rx slab ids of the unix sockets this backlog keeps from reading,
  // the watchdog that ends the wait, and whether it ran out (stuck: holds nobody until empty).
  std::vector<int32_t> holding;
  uv_timer_t* timer = nullptr;
  bool stuck = false;

  bool Deep() const { return count >= kFlowPauseDatagrams || bytes >= kFlowPauseBytes; }
  bool Shallow() const { return count <= kFlowResumeDatagrams && bytes <= kFlowResumeBytes; }

  // Appends a copy; false (nothing stored) when the ring is full by count or by bytes.
  bool Push(const uint8_t* data, size_t n) {
    if (count == kBacklogDatagrams || n > kBacklogBytes) return false;
    size_t at = 0;
    if (count > 0) {
      size_t first = off[head];
      if (wr >= first) {
        // Not wrapped: free space is [wr, end) then [0, first). Strictly below first, so that
        // wr == first keeps meaning "not wrapped".
        if (wr + n <= kBacklogBytes) {
          at = wr;
        } else if (n < first) {
          at = 0;
        } else {
          return false;
        }
      } else {
        // Wrapped: free space is [wr, first).
        if (wr + n < first) at = wr; else return false;
      }
    }
    if (!buf) buf.reset(new uint8_t[kBacklogBytes]);
    if (n > 0) memcpy(buf.get() + at, data, n);
    int slot = (head + count) % kBacklogDatagrams;
    off[slot] = static_cast<uint32_t>(at);
    len[slot] = static_cast<uint32_t>(n);
    count++;
    wr = at + n;
    bytes += n;
    return true;
  }

  void Pop(int n) {
    for (int j = 0; j < n; j++) bytes -= len[(head + j) % kBacklogDatagrams];
    head = (head + n) % kBacklogDatagrams;
    count -= n;
    if (count == 0) {
      head = 0;
      wr = 0;
      bytes = 0;
    }
  }

  void Clear() {
    head = 0;
    count = 0;
    wr = 0;
    bytes = 0;
    buf.reset();
  }
};

// Rx slabs that a flush may read frames from without a copy (send stage 1). An id is a slot
// (low kRxSlabSlotBits) plus that registration's generation, so an id kept after its socket was
// destroyed never names the next slab in the slot. Id 0 is never given out: it means the sender's
// own tx slab. A fixed array, so a flush never reads it mid-reallocation; with every slot taken, a
// slab gets 0 and frames from it are copied as before. Registration is locked (workers may load
// the addon); lookups are not: a thread only ever sees its own ids.
constexpr int kRxSlabSlotBits = 12;
constexpr int kMaxRxSlabs = 1 << kRxSlabSlotBits;
struct RxSlabEntry {
  uint8_t* base;
  size_t bytes;
  int32_t id;
  BatchSocket* owner;  // the socket that receives into it (flow control pauses it)
};
static RxSlabEntry gRxSlabs[kMaxRxSlabs];
static int32_t gRxSlabGeneration = 0;
static std::mutex gRxSlabsLock;

static int32_t RegisterRxSlab(uint8_t* base, size_t bytes, BatchSocket* owner) {
  std::lock_guard<std::mutex> hold(gRxSlabsLock);
  for (int slot = 1; slot < kMaxRxSlabs; slot++) {
    if (gRxSlabs[slot].base == nullptr) {
      gRxSlabGeneration = (gRxSlabGeneration + 1) & ((1 << (31 - kRxSlabSlotBits)) - 1);
      int32_t id = (gRxSlabGeneration << kRxSlabSlotBits) | slot;
      gRxSlabs[slot] = {base, bytes, id, owner};
      return id;
    }
  }
  return 0;
}

// The slab an id names, or {nullptr, 0} when that registration is gone (or the id is not one).
static RxSlabEntry LookupRxSlab(int32_t id) {
  if (id <= 0) return {nullptr, 0, 0, nullptr};
  const RxSlabEntry& e = gRxSlabs[id & (kMaxRxSlabs - 1)];
  return e.id == id ? e : RxSlabEntry{nullptr, 0, 0, nullptr};
}

static void UnregisterRxSlab(int32_t id) {
  if (id <= 0) return;
  std::lock_guard<std::mutex> hold(gRxSlabsLock);
  RxSlabEntry& e = gRxSlabs[id & (kMaxRxSlabs - 1)];
  if (e.id == id) e = {nullptr, 0, 0, nullptr};
}

class BatchSocket : public Napi::ObjectWrap<BatchSocket>, public BusyPollable {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "BatchSocket", {
      InstanceMethod<&BatchSocket::Open>("open"),
      InstanceMethod<&BatchSocket::LocalAddress>("localAddress"),
      InstanceMethod<&BatchSocket::IgnoreSource>("ignoreSource"),
      InstanceMethod<&BatchSocket::AcceptSources>("acceptSources"),
      InstanceMethod<&BatchSocket::PeerIdInet>("peerIdInet"),
      InstanceMethod<&BatchSocket::PeerIdUnix>("peerIdUnix"),
      InstanceMethod<&BatchSocket::PeerAddress>("peerAddress"),
      InstanceMethod<&BatchSocket::ReleasePeer>("releasePeer"),
      InstanceMethod<&BatchSocket::EnablePeerEviction>("enablePeerEviction"),
      InstanceMethod<&BatchSocket::Start>("start"),
      InstanceMethod<&BatchSocket::CopyIn>("copyIn"),
      InstanceMethod<&BatchSocket::RxSlabId>("rxSlabId"),
      InstanceMethod<&BatchSocket::Flush>("flush"),
      InstanceMethod<&BatchSocket::Close>("close"),
    });
    exports.Set("BatchSocket", ctor);
    exports.Set("maxBatch", Napi::Number::New(env, kMaxBatch));
    exports.Set("backlogDatagrams", Napi::Number::New(env, kBacklogDatagrams));
    exports.Set("backlogBytes", Napi::Number::New(env, static_cast<double>(kBacklogBytes)));
    exports.Set("maxPeers", Napi::Number::New(env, kMaxPeers));
    exports.Set("evictedMax", Napi::Number::New(env, kEvictedMax));
    return exports;
  }

  // new BatchSocket(rxSlab, slotBytes, lengths, peers, txSlab, txOffs, txLens, txPeers, txSrcs, counters)
  // All memory is JS-owned and referenced here for the socket's life; the batch size is
  // lengths.length and the tx queue capacity is txOffs.length. txSrcs[i] is 0 (txOffs[i] is in the
  // tx slab) or the rxSlabId() of the slab it is in.
  explicit BatchSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BatchSocket>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 10 || !info[0].IsBuffer() || !info[1].IsNumber() || !info[2].IsTypedArray() ||
        !info[3].IsTypedArray() || !info[4].IsBuffer() || !info[5].IsTypedArray() ||
        !info[6].IsTypedArray() || !info[7].IsTypedArray() || !info[8].IsTypedArray() || !info[9].IsTypedArray()) {
      Napi::TypeError::New(env, "BatchSocket: bad constructor arguments (use batch-io.ts)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Buffer<uint8_t> rx = info[0].As<Napi::Buffer<uint8_t>>();
    slotBytes_ = info[1].As<Napi::Number>().Int32Value();
    Napi::Int32Array lengths = info[2].As<Napi::Int32Array>();
    Napi::Int32Array peers = info[3].As<Napi::Int32Array>();
    Napi::Buffer<uint8_t> tx = info[4].As<Napi::Buffer<uint8_t>>();
    Napi::Int32Array txOffs = info[5].As<Napi::Int32Array>();
    Napi::Int32Array txLens = info[6].As<Napi::Int32Array>();
    Napi::Int32Array txPeers = info[7].As<Napi::Int32Array>();
    Napi::Int32Array txSrcs = info[8].As<Napi::Int32Array>();
    Napi::Float64Array counters = info[9].As<Napi::Float64Array>();
    batch_ = static_cast<int>(lengths.ElementLength());
    txCap_ = static_cast<int>(txOffs.ElementLength());
    if (batch_ < 1 || batch_ > kMaxBatch || slotBytes_ < 1 || peers.ElementLength() != lengths.ElementLength() ||
        rx.Length() < static_cast<size_t>(batch_) * static_cast<size_t>(slotBytes_) || txCap_ < 1 || txCap_ > kMaxBatch ||
        txLens.ElementLength() != txOffs.ElementLength() || txPeers.ElementLength() != txOffs.ElementLength() ||
        txSrcs.ElementLength() != txOffs.ElementLength() || counters.ElementLength() < kCounterCount) {
      Napi::RangeError::New(env, "BatchSocket: inconsistent slab or array sizes (use batch-io.ts)").ThrowAsJavaScriptException();
      return;
    }
    rxBase_ = rx.Data();
    lengths_ = lengths.Data();
    peers_ = peers.Data();
    txBase_ = tx.Data();
    txBytes_ = tx.Length();
    txOffs_ = txOffs.Data();
    txLens_ = txLens.Data();
    txPeers_ = txPeers.Data();
    txSrcs_ = txSrcs.Data();
    counters_ = counters.Data();
    // Keep the JS memory alive as long as this object holds raw pointers into it.
    for (size_t i = 0; i < 10; i++) {
      if (i != 1) memory_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    }
    rxSlabId_ = RegisterRxSlab(rxBase_, rx.Length(), this);

    rxHdrs_.resize(batch_);
    rxIov_.resize(batch_);
    rxNames_.resize(batch_);
    for (int i = 0; i < batch_; i++) {
      rxIov_[i].iov_base = rxBase_ + static_cast<size_t>(i) * slotBytes_;
      rxIov_[i].iov_len = slotBytes_;
      msghdr& h = rxHdrs_[i].msg_hdr;
      memset(&h, 0, sizeof(h));
      h.msg_name = &rxNames_[i];
      h.msg_iov = &rxIov_[i];
      h.msg_iovlen = 1;
    }
    txHdrs_.resize(txCap_);
    txIov_.resize(txCap_);
    for (int i = 0; i < txCap_; i++) {
      msghdr& h = txHdrs_[i].msg_hdr;
      memset(&h, 0, sizeof(h));
      h.msg_iov = &txIov_[i];
      h.msg_iovlen = 1;
    }
    txIds_.resize(txCap_);
    txSegs_.resize(txCap_);
    txMsgBytes_.resize(txCap_);
    txMsgSrcs_.resize(txCap_);
    txCtl_.assign(static_cast<size_t>(txCap_) * CMSG_SPACE(sizeof(uint16_t)), 0);
    for (int i = 0; i < kBacklogSendBatch; i++) {
      msghdr& h = blHdrs_[i].msg_hdr;
      memset(&h, 0, sizeof(h));
      h.msg_iov = &blIov_[i];
      h.msg_iovlen = 1;
    }
    if (napi_get_uv_event_loop(env, &loop_) != napi_ok) loop_ = nullptr;
    asyncContext_ = new Napi::AsyncContext(env, "lanparty:batch-socket");
  }

  ~BatchSocket() override {
    // Reached only when the socket was never started or already closed (start() holds a strong
    // reference until close()), so there is no active poll handle here.
    if (fd_ >= 0) ::close(fd_);
    UnregisterRxSlab(rxSlabId_);
    delete asyncContext_;
  }

 private:
  // open({kind, host, port, path, reuseAddr, rcvbufBytes, sndbufBytes,
  //       mcastGroup, mcastInterface, mcastTtl, mcastLoop, mcastJoin}): socket, options, bind.
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ >= 0 || closed_) {
      Napi::Error::New(env, "BatchSocket: open() called twice").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Object o = info[0].As<Napi::Object>();
    std::string kind = o.Get("kind").As<Napi::String>().Utf8Value();
    sockaddr_storage bindAddr;
    memset(&bindAddr, 0, sizeof(bindAddr));
    socklen_t bindLen = 0;
    std::string where;
    if (kind == "udp4") {
      kind_ = Kind::kInet;
      std::string host = o.Get("host").As<Napi::String>().Utf8Value();
      int port = o.Get("port").As<Napi::Number>().Int32Value();
      sockaddr_in* sin = reinterpret_cast<sockaddr_in*>(&bindAddr);
      sin->sin_family = AF_INET;
      sin->sin_port = htons(static_cast<uint16_t>(port));
      where = host + ":" + std::to_string(port);
      if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) != 1) {
        ErrnoError(env, EINVAL, "inet_pton", where).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      bindLen = sizeof(sockaddr_in);
    } else if (kind == "unix") {
      kind_ = Kind::kUnix;
      std::string path = o.Get("path").As<Napi::String>().Utf8Value();
      where = path;
      sockaddr_un* sun = reinterpret_cast<sockaddr_un*>(&bindAddr);
      sun->sun_family = AF_UNIX;
      if (path.empty() || path.size() >= sizeof(sun->sun_path)) {
        ErrnoError(env, ENAMETOOLONG, "bind", where).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      memcpy(sun->sun_path, path.data(), path.size());
      bindLen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    } else {
      Napi::TypeError::New(env, "BatchSocket: kind must be udp4 or unix").ThrowAsJavaScriptException();
      return env.Undefined();
    }

    int fd = ::socket(kind_ == Kind::kInet ? AF_INET : AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      ErrnoError(env, errno, "socket", where).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    const char* failed = nullptr;
    std::string failedWhere = where;
    int one = 1;
    if (o.Get("reuseAddr").ToBoolean().Value() &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
      failed = "setsockopt(SO_REUSEADDR)";
    }
    int rcvbuf = o.Get("rcvbufBytes").ToNumber().Int32Value();
    if (!failed && rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0) {
      failed = "setsockopt(SO_RCVBUF)";
    }
    int sndbuf = o.Get("sndbufBytes").ToNumber().Int32Value();
    if (!failed && sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) != 0) {
      failed = "setsockopt(SO_SNDBUF)";
    }
    // SO_NO_CHECK: send UDP with a zero checksum (VXLAN, RFC 7348 section 5).
    if (!failed && kind_ == Kind::kInet && o.Get("noUdpChecksum").ToBoolean().Value() &&
        setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof(one)) != 0) {
      failed = "setsockopt(SO_NO_CHECK)";
    }
    if (!failed && ::bind(fd, reinterpret_cast<sockaddr*>(&bindAddr), bindLen) != 0) failed = "bind";
    // UDP GSO (send stage 2): probe with UDP_SEGMENT = 0 (per-message size comes in a cmsg);
    // ENOPROTOOPT on kernels without it. Never with SO_NO_CHECK (the kernel refuses that pair).
    if (!failed && kind_ == Kind::kInet && o.Get("udpGso").ToBoolean().Value() &&
        !o.Get("noUdpChecksum").ToBoolean().Value()) {
      int zero = 0;
      gso_ = setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof(zero)) == 0;
    }
    Napi::Value group = o.Get("mcastGroup");
    if (!failed && kind_ == Kind::kInet && group.IsString()) {
      std::string g = group.As<Napi::String>().Utf8Value();
      std::string ifs = o.Get("mcastInterface").As<Napi::String>().Utf8Value();
      failedWhere = where + " (group " + g + ", interface " + ifs + ")";
      ip_mreq mreq;
      memset(&mreq, 0, sizeof(mreq));
      if (inet_pton(AF_INET, g.c_str(), &mreq.imr_multiaddr) != 1 ||
          inet_pton(AF_INET, ifs.c_str(), &mreq.imr_interface) != 1) {
        ::close(fd);
        ErrnoError(env, EINVAL, "inet_pton", failedWhere).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      int ttl = o.Get("mcastTtl").ToNumber().Int32Value();
      int loop = o.Get("mcastLoop").ToBoolean().Value() ? 1 : 0;
      if (o.Get("mcastJoin").ToBoolean().Value() &&
          setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) != 0) {
        failed = "setsockopt(IP_ADD_MEMBERSHIP)";
      } else if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq.imr_interface, sizeof(mreq.imr_interface)) != 0) {
        failed = "setsockopt(IP_MULTICAST_IF)";
      } else if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) != 0) {
        failed = "setsockopt(IP_MULTICAST_TTL)";
      } else if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) != 0) {
        failed = "setsockopt(IP_MULTICAST_LOOP)";
      }
    }
    if (failed) {
      int err = errno;
      ::close(fd);
      ErrnoError(env, err, failed, failedWhere).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    flowControl_ = kind_ == Kind::kUnix && o.Get("flowControl").ToBoolean().Value();
    Napi::Value maxPeers = o.Get("maxPeers");
    if (maxPeers.IsNumber()) table_.SetLimit(maxPeers.As<Napi::Number>().Int32Value());
    fd_ = fd;
    return env.Undefined();
  }

  // ignoreSource(host, port): attaches a classic BPF socket filter that drops, in the kernel,
  // every UDP datagram from host:port (host "0.0.0.0": from that port on any address). For the
  // mcast port: its own frames come back through multicast loopback to the socket bound to the
  // group, and without the filter each one is copied out, looked at and dropped in JS (half of the
  // receive work of a busy group). UDP runs socket filters with skb->data at the UDP header, so
  // the source port is at offset 0 and the source address at SKF_NET_OFF + 12 (the IPv4 header).
  // Returns true when attached (udp4 only).
  Napi::Value IgnoreSource(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0 || kind_ != Kind::kInet || info.Length() != 2 || !info[0].IsString() || !info[1].IsNumber()) {
      return Napi::Boolean::New(env, false);
    }
    std::string host = info[0].As<Napi::String>().Utf8Value();
    uint32_t port = info[1].As<Napi::Number>().Uint32Value();
    in_addr a;
    if (inet_pton(AF_INET, host.c_str(), &a) != 1 || port == 0 || port > 65535) return Napi::Boolean::New(env, false);
    uint32_t ip = ntohl(a.s_addr);
    sock_filter anyAddr[] = {
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 0),                         // A = UDP source port
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1),               // ours? drop : accept
        BPF_STMT(BPF_RET | BPF_K, 0),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),
    };
    sock_filter oneAddr[] = {
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 0),                         // A = UDP source port
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 3),               // not ours: accept
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_NET_OFF + 12)),  // A = IPv4 source
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ip, 0, 1),                 // ours? drop : accept
        BPF_STMT(BPF_RET | BPF_K, 0),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),
    };
    sock_fprog prog;
    if (ip == 0) {
      prog.len = sizeof(anyAddr) / sizeof(anyAddr[0]);
      prog.filter = anyAddr;
    } else {
      prog.len = sizeof(oneAddr) / sizeof(oneAddr[0]);
      prog.filter = oneAddr;
    }
    return Napi::Boolean::New(env, setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) == 0);
  }

  // acceptSources(nets, exact): udp4 only. From now on a datagram is taken only from a source
  // inside one of nets (a flat array of [network, mask] host-order uint32 pairs) or equal to one
  // of exact ([address, port] pairs); any other is dropped before it gets a peer id (no state for
  // it) and counted in kNotAccepted. Empty arrays accept nothing. The lists are short (the
  // locator caps them), so a linear scan per datagram costs less than a lookup structure.
  Napi::Value AcceptSources(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (kind_ != Kind::kInet || info.Length() != 2 || !info[0].IsArray() || !info[1].IsArray()) {
      return Napi::Boolean::New(env, false);
    }
    Napi::Array nets = info[0].As<Napi::Array>();
    Napi::Array exact = info[1].As<Napi::Array>();
    acceptNets_.clear();
    acceptExact_.clear();
    for (uint32_t i = 0; i + 1 < nets.Length(); i += 2) {
      uint32_t mask = nets.Get(i + 1).ToNumber().Uint32Value();
      acceptNets_.push_back({nets.Get(i).ToNumber().Uint32Value() & mask, mask});
    }
    for (uint32_t i = 0; i + 1 < exact.Length(); i += 2) {
      acceptExact_.push_back({exact.Get(i).ToNumber().Uint32Value(), exact.Get(i + 1).ToNumber().Uint32Value()});
    }
    acceptOn_ = true;
    return Napi::Boolean::New(env, true);
  }

  bool Accepts(const sockaddr_storage& ss) const {
    if (ss.ss_family != AF_INET) return false;
    const sockaddr_in* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    uint32_t ip = ntohl(sin->sin_addr.s_addr);
    for (const auto& n : acceptNets_) {
      if ((ip & n.second) == n.first) return true;
    }
    uint32_t port = ntohs(sin->sin_port);
    for (const auto& e : acceptExact_) {
      if (e.first == ip && e.second == port) return true;
    }
    return false;
  }

  // Returns {kind:'udp4', host, port} or {kind:'unix', path} for the bound address.
  Napi::Value LocalAddress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (fd_ < 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      ErrnoError(env, fd_ < 0 ? EBADF : errno, "getsockname", "").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    PeerAddr p;
    if (!Canonical(ss, len, &p)) return env.Null();
    return AddressObject(env, p);
  }

  // peerIdInet(host, port) -> id (or -1 when the table is full). Throws on a bad address.
  Napi::Value PeerIdInet(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string host = info[0].As<Napi::String>().Utf8Value();
    int port = info[1].As<Napi::Number>().Int32Value();
    sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    sockaddr_in* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) != 1) {
      ErrnoError(env, EINVAL, "inet_pton", host).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    PeerAddr p;
    Canonical(ss, sizeof(sockaddr_in), &p);
    int id = table_.Intern(p, true, false);
    NotePeers();
    return Napi::Number::New(env, id);
  }

  // peerIdUnix(path) -> id (or -1 when the table is full).
  Napi::Value PeerIdUnix(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path = info[0].As<Napi::String>().Utf8Value();
    sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    sockaddr_un* sun = reinterpret_cast<sockaddr_un*>(&ss);
    sun->sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(sun->sun_path)) {
      ErrnoError(env, ENAMETOOLONG, "peerId", path).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    memcpy(sun->sun_path, path.data(), path.size());
    PeerAddr p;
    Canonical(ss, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1), &p);
    int id = table_.Intern(p, true, false);
    NotePeers();
    return Napi::Number::New(env, id);
  }

  Napi::Value PeerAddress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const PeerAddr* p = table_.Get(info[0].ToNumber().Int32Value());
    if (!p) return env.Null();
    return AddressObject(env, *p);
  }

  // releasePeer(id): the owner keeps nothing for this id any more (and sends nothing more to it):
  // its address is forgotten, a unix backlog waiting for it is dropped (counted in kSendDropped),
  // and the id may be given to another address. Returns false when the id was not in use.
  Napi::Value ReleasePeer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int id = info[0].ToNumber().Int32Value();
    if (id >= 0 && id < static_cast<int>(backlogs_.size()) && backlogs_[id]) {
      PeerBacklog* b = backlogs_[id].get();
      counters_[kSendDropped] += b->count;
      counters_[kSendErrors] += b->count;
      counters_[kSendQueued] -= b->count;
      SetWaitingOnSelf(b, false);
      CloseDoorbell(b);
      Release(b);
      CloseFlowTimer(b);
      b->Clear();
      backlogs_[id].reset();
    }
    bool released = table_.Release(id);
    NotePeers();
    return Napi::Boolean::New(env, released);
  }

  void NotePeers() {
    counters_[kPeersLive] = table_.Live() + table_.EvictedWaiting();
    counters_[kPeersEvicted] = static_cast<double>(table_.evictions);
  }

  // enablePeerEviction(report): opts in to eviction when the peer table is full (PeerTable).
  // report is an Int32Array of evictedMax + 1: the addon appends evicted ids at report[1 ..
  // report[0]] and JS, before it handles the next batch, takes them, sets report[0] = 0 and
  // releases each id.
  Napi::Value EnablePeerEviction(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
        info[0].As<Napi::Int32Array>().ElementLength() < static_cast<size_t>(kEvictedMax) + 1) {
      Napi::TypeError::New(env, "BatchSocket: enablePeerEviction needs an Int32Array of evictedMax + 1 (use batch-io.ts)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Int32Array report = info[0].As<Napi::Int32Array>();
    memory_.push_back(Napi::Persistent(report.As<Napi::Object>()));
    table_.SetEviction(report.Data());
    return env.Undefined();
  }

  // start(callback): callback(count) runs once per received batch until close().
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0 || started_ || !info[0].IsFunction()) {
      Napi::Error::New(env, "BatchSocket: start() needs an open socket, a callback, and may run once").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!loop_) {
      Napi::Error::New(env, "BatchSocket: no libuv loop").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    started_ = true;
    int r = UpdateMainPoll();
    if (r != 0) {
      started_ = false;
      ErrnoError(env, -r, "uv_poll_start", "").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    HoldSelf();
    BusyJoin(this);
    return env.Undefined();
  }

  // While a poll handle holds a raw pointer to this object (receiving, or a backlog waiting),
  // keep the JS object from being collected; released by close().
  void HoldSelf() {
    if (referenced_) return;
    Ref();
    referenced_ = true;
  }

  // The main socket's poll: UV_READABLE once started, UV_WRITABLE while some backlog waits for
  // our own send buffer. Returns 0 or a libuv error.
  int UpdateMainPoll() {
    int events = (started_ && pausedBy_ == 0 ? UV_READABLE : 0) | (selfWaiters_ > 0 ? UV_WRITABLE : 0);
    if (events == 0) {
      if (poll_) uv_poll_stop(poll_);
      return 0;
    }
    if (!poll_) {
      if (!loop_ || fd_ < 0) return UV_EBADF;
      poll_ = new uv_poll_t;
      int r = uv_poll_init(loop_, poll_, fd_);
      if (r != 0) {
        delete poll_;
        poll_ = nullptr;
        return r;
      }
      poll_->data = this;
    }
    return uv_poll_start(poll_, events, OnPoll);
  }

  // copyIn(buf, off, len, at): copies buf[off, off+len) to txSlab[at]. Buffer.prototype.copy of a
  // sub-range allocates a Uint8Array view per call in Node 20; this does not. Returns false when a
  // range is out of bounds (nothing copied).
  Napi::Value CopyIn(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    void* data = nullptr;
    size_t size = 0;
    uint32_t off = 0, len = 0, at = 0;
    if (napi_get_buffer_info(env, info[0], &data, &size) != napi_ok ||
        napi_get_value_uint32(env, info[1], &off) != napi_ok ||
        napi_get_value_uint32(env, info[2], &len) != napi_ok ||
        napi_get_value_uint32(env, info[3], &at) != napi_ok ||
        static_cast<size_t>(off) + len > size || static_cast<size_t>(at) + len > txBytes_) {
      return Napi::Boolean::New(env, false);
    }
    memcpy(txBase_ + at, static_cast<uint8_t*>(data) + off, len);
    return Napi::Boolean::New(env, true);
  }

  // rxSlabId(): this socket's rx slab id for other sockets' txSrcs (0: not registered, copy instead).
  Napi::Value RxSlabId(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), rxSlabId_);
  }

  // flush(count): sends txOffs/txLens/txPeers[0..count) from the tx slab or the rx slab txSrcs names.
  // Returns datagrams sent now (backlogged ones are not counted).
  Napi::Value Flush(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int count = info[0].As<Napi::Number>().Int32Value();
    if (count > txCap_) count = txCap_;
    if (fd_ < 0 || count <= 0) return Napi::Number::New(env, 0);
    // Stage 1: one iovec per valid queued datagram, one mmsghdr per message. A unix peer with a
    // backlog gets the datagram appended there instead, behind the ones already waiting. On UDP
    // with GSO, a datagram joins the previous message when it goes to the same peer, the message
    // so far is all one length and this one is no longer (the kernel's GSO rule), and the message
    // stays within kGsoMaxSegments / kGsoMaxBytes.
    int k = 0;  // messages
    int v = 0;  // iovecs
    for (int i = 0; i < count; i++) {
      int id = txPeers_[i];
      const PeerAddr* p = table_.Get(id);
      int32_t off = txOffs_[i];
      int32_t len = txLens_[i];
      int32_t src = txSrcs_[i];
      uint8_t* base = txBase_;
      size_t bytes = txBytes_;
      if (src != 0) {
        const RxSlabEntry e = LookupRxSlab(src);
        base = e.base;
        bytes = e.bytes;
      }
      if (!p || !base || off < 0 || len < 0 || static_cast<size_t>(off) + static_cast<size_t>(len) > bytes) {
        counters_[kSendErrors] += 1;
        continue;
      }
      PeerBacklog* b = ActiveBacklog(id);
      if (b) {
        Backlog(b, base + off, static_cast<size_t>(len), src);
        continue;
      }
      txIov_[v].iov_base = base + off;
      txIov_[v].iov_len = static_cast<size_t>(len);
      if (gso_ && k > 0 && txIds_[k - 1] == id && len > 0) {
        msghdr& prev = txHdrs_[k - 1].msg_hdr;
        size_t seg = prev.msg_iov[0].iov_len;
        if (prev.msg_iov[prev.msg_iovlen - 1].iov_len == seg && static_cast<size_t>(len) <= seg &&
            seg <= gsoMaxSeg_ && txSegs_[k - 1] < kGsoMaxSegments &&
            txMsgBytes_[k - 1] + static_cast<size_t>(len) <= kGsoMaxBytes) {
          prev.msg_iovlen++;
          txSegs_[k - 1]++;
          txMsgBytes_[k - 1] += static_cast<size_t>(len);
          v++;
          continue;
        }
      }
      msghdr& h = txHdrs_[k].msg_hdr;
      h.msg_name = const_cast<sockaddr_storage*>(&p->addr);
      h.msg_namelen = p->len;
      h.msg_iov = &txIov_[v];
      h.msg_iovlen = 1;
      h.msg_control = nullptr;
      h.msg_controllen = 0;
      txIds_[k] = id;
      txSegs_[k] = 1;
      txMsgBytes_[k] = static_cast<size_t>(len);
      txMsgSrcs_[k] = src;
      v++;
      k++;
    }
    // The UDP_SEGMENT cmsg of each GSO message: the segment size is its first datagram's length.
    if (gso_) {
      for (int m = 0; m < k; m++) {
        if (txSegs_[m] < 2) continue;
        msghdr& h = txHdrs_[m].msg_hdr;
        uint8_t* ctl = txCtl_.data() + static_cast<size_t>(m) * CMSG_SPACE(sizeof(uint16_t));
        h.msg_control = ctl;
        h.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
        cmsghdr* c = CMSG_FIRSTHDR(&h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = static_cast<uint16_t>(h.msg_iov[0].iov_len);
        memcpy(CMSG_DATA(c), &seg, sizeof(seg));
      }
    }
    // Stage 2: sendmmsg until all are sent, dropped or backlogged.
    int sent = 0;
    int i = 0;
    while (i < k) {
      int r = sendmmsg(fd_, &txHdrs_[i], static_cast<unsigned>(k - i), MSG_DONTWAIT);
      if (r > 0) {
        for (int m = i; m < i + r; m++) {
          sent += txSegs_[m];
          if (txSegs_[m] > 1) {
            counters_[kGsoMessages] += 1;
            counters_[kGsoDatagrams] += txSegs_[m];
          }
        }
        i += r;
        continue;
      }
      int err = r < 0 ? errno : EIO;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
        if (kind_ == Kind::kInet) {
          // Our own send buffer is full (ours to drop): every remaining datagram would fail the
          // same way.
          int rest = 0;
          for (int m = i; m < k; m++) rest += txSegs_[m];
          counters_[kSendDropped] += rest;
          counters_[kSendErrors] += rest;
          break;
        }
        // Unix: that receiver's queue (or our buffer) is full. Its datagram i and every later one
        // to the same peer in this flush go to its backlog, in order; the others carry on.
        // (Unix messages are always one datagram each: no GSO.)
        int id = txIds_[i];
        PeerBacklog* b = BacklogFor(id);
        if (!b) {
          counters_[kSendDropped] += 1;
          counters_[kSendErrors] += 1;
          i++;
          continue;
        }
        int w = i;
        for (int j = i; j < k; j++) {
          if (txIds_[j] == id) {
            Backlog(b, static_cast<uint8_t*>(txHdrs_[j].msg_hdr.msg_iov[0].iov_base), txHdrs_[j].msg_hdr.msg_iov[0].iov_len,
                    txMsgSrcs_[j]);
          } else if (w != j) {
            txHdrs_[w].msg_hdr.msg_iov = txHdrs_[j].msg_hdr.msg_iov;
            txHdrs_[w].msg_hdr.msg_name = txHdrs_[j].msg_hdr.msg_name;
            txHdrs_[w].msg_hdr.msg_namelen = txHdrs_[j].msg_hdr.msg_namelen;
            txIds_[w] = txIds_[j];
            txSegs_[w] = 1;
            txMsgSrcs_[w] = txMsgSrcs_[j];
            w++;
          } else {
            w++;
          }
        }
        k = w;
        if (b->count > 0) Service(b, true);
        continue;
      }
      if (txSegs_[i] > 1 && (err == EINVAL || err == EIO || err == EMSGSIZE)) {
        // The path refused the GSO message (segment above its MTU, no checksum offload): no more
        // GSO for segments this large on this socket, and this message's datagrams go one by one.
        // EIO: the route's device cannot checksum for us, so GSO can never work here.
        size_t seg = txHdrs_[i].msg_hdr.msg_iov[0].iov_len;
        if (err == EIO) gso_ = false;
        if (seg <= gsoMaxSeg_) gsoMaxSeg_ = seg - 1;
        sent += SendOneByOne(txHdrs_[i].msg_hdr);
        i++;
        continue;
      }
      // Any other error (ENOENT/ECONNREFUSED for a vanished unix peer, EMSGSIZE, ...) belongs to
      // message i alone: count its datagrams and go on with the rest.
      counters_[kSendErrors] += txSegs_[i];
      i++;
    }
    return Napi::Number::New(env, sent);
  }

  // Sends each datagram of a GSO message as a message of its own (the scratch headers of the
  // backlog path; it is idle here, Flush runs to completion). Returns datagrams sent; the rest are
  // counted as errors or drops.
  int SendOneByOne(const msghdr& m) {
    int n = static_cast<int>(m.msg_iovlen);
    for (int j = 0; j < n; j++) {
      blIov_[j] = m.msg_iov[j];
      blHdrs_[j].msg_hdr.msg_name = m.msg_name;
      blHdrs_[j].msg_hdr.msg_namelen = m.msg_namelen;
    }
    int sent = 0;
    int j = 0;
    while (j < n) {
      int r = sendmmsg(fd_, &blHdrs_[j], static_cast<unsigned>(n - j), MSG_DONTWAIT);
      if (r > 0) {
        j += r;
        sent += r;
        continue;
      }
      int err = r < 0 ? errno : EIO;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
        counters_[kSendDropped] += n - j;
        counters_[kSendErrors] += n - j;
        break;
      }
      counters_[kSendErrors] += 1;
      j++;
    }
    return sent;
  }

  // ---- Unix peer backlogs (header, send stages 3-5) ----

  // The peer's backlog if it has datagrams waiting, else null.
  PeerBacklog* ActiveBacklog(int id) {
    if (kind_ != Kind::kUnix || id < 0 || id >= static_cast<int>(backlogs_.size())) return nullptr;
    PeerBacklog* b = backlogs_[id].get();
    return b && b->count > 0 ? b : nullptr;
  }

  // The peer's backlog, created on first use (null without a loop).
  PeerBacklog* BacklogFor(int id) {
    if (kind_ != Kind::kUnix || id < 0 || !loop_ || closed_) return nullptr;
    if (id >= static_cast<int>(backlogs_.size())) backlogs_.resize(id + 1);
    if (!backlogs_[id]) {
      backlogs_[id].reset(new PeerBacklog);
      backlogs_[id]->owner = this;
      backlogs_[id]->peer = id;
    }
    HoldSelf();  // Its poll handles will hold raw pointers to us.
    return backlogs_[id].get();
  }

  // Appends one datagram; when the backlog is full the NEWEST (this one) is dropped and counted
  // as a full-queue drop, so a peer that never reads costs at most kBacklogBytes. `src` is the rx
  // slab the datagram was forwarded from (0: copied in): a deep backlog pauses that socket.
  void Backlog(PeerBacklog* b, const uint8_t* data, size_t len, int32_t src) {
    if (b->Push(data, len)) {
      counters_[kSendQueued] += 1;
      if (src != 0 && !b->stuck && b->Deep()) Hold(b, src);
    } else {
      counters_[kSendDropped] += 1;
      counters_[kSendErrors] += 1;
    }
  }

  // ---- Flow control (header, send stage 6) ----

  // Stops the unix socket that owns rx slab `src` from reading until this backlog is shallow
  // again (Release), or its watchdog runs out. A UDP socket is never paused: its senders cannot
  // be held back, the kernel would only drop at its queue instead of here.
  void Hold(PeerBacklog* b, int32_t src) {
    for (int32_t h : b->holding) {
      if (h == src) return;
    }
    BatchSocket* s = LookupRxSlab(src).owner;
    if (!s || s->kind_ != Kind::kUnix || !s->flowControl_ || s->closed_ || !s->started_) return;
    if (b->holding.empty() && StartFlowTimer(b) != 0) return;  // a wait without a bound: none
    b->holding.push_back(src);
    s->pausedBy_ += 1;
    s->UpdateMainPoll();
    counters_[kFlowPauses] += 1;
  }

  // Lets every socket this backlog holds read again.
  void Release(PeerBacklog* b) {
    if (b->timer) uv_timer_stop(b->timer);
    for (int32_t id : b->holding) {
      BatchSocket* s = LookupRxSlab(id).owner;
      if (!s) continue;  // gone
      s->pausedBy_ -= 1;
      if (!s->closed_) s->UpdateMainPoll();
    }
    b->holding.clear();
  }

  int StartFlowTimer(PeerBacklog* b) {
    if (!b->timer) {
      b->timer = new uv_timer_t;
      int r = uv_timer_init(loop_, b->timer);
      if (r != 0) {
        delete b->timer;
        b->timer = nullptr;
        return r;
      }
      b->timer->data = b;
    }
    return uv_timer_start(b->timer, OnFlowTimeout, kFlowPauseMaxMs, 0);
  }

  // The backlog held a socket kFlowPauseMaxMs without draining to its resume marks: its receiver
  // is stuck (stopped reading, or a loop of switches each waiting for the other). It lets go and
  // pauses nobody again until it has emptied; meanwhile it drops at its bounds, as without flow
  // control.
  static void OnFlowTimeout(uv_timer_t* t) {
    PeerBacklog* b = static_cast<PeerBacklog*>(t->data);
    BatchSocket* self = b->owner;
    if (self->closed_ || b->holding.empty()) return;
    b->stuck = true;
    self->counters_[kFlowTimeouts] += 1;
    self->Release(b);
  }

  static void CloseFlowTimer(PeerBacklog* b) {
    if (!b->timer) return;
    uv_timer_stop(b->timer);
    uv_close(reinterpret_cast<uv_handle_t*>(b->timer), FreeTimer);
    b->timer = nullptr;
  }

  static void FreeTimer(uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); }

  static bool PeerGone(int err) { return err == ENOENT || err == ECONNREFUSED || err == ENOTDIR; }

  // Sends from the backlog through the main socket until it is empty (returns 0) or a send is
  // refused: EAGAIN/ENOBUFS (blocked) or a vanished peer (ENOENT/ECONNREFUSED) is returned.
  // Other errors belong to one datagram, which is counted and skipped.
  int SendBacklog(PeerBacklog* b) {
    const PeerAddr* p = table_.Get(b->peer);
    while (b->count > 0) {
      int n = b->count < kBacklogSendBatch ? b->count : kBacklogSendBatch;
      for (int j = 0; j < n; j++) {
        int slot = (b->head + j) % kBacklogDatagrams;
        blIov_[j].iov_base = b->buf.get() + b->off[slot];
        blIov_[j].iov_len = b->len[slot];
        blHdrs_[j].msg_hdr.msg_name = const_cast<sockaddr_storage*>(&p->addr);
        blHdrs_[j].msg_hdr.msg_namelen = p->len;
      }
      int r = sendmmsg(fd_, blHdrs_, static_cast<unsigned>(n), MSG_DONTWAIT);
      if (r > 0) {
        b->Pop(r);
        counters_[kSendQueued] -= r;
        continue;
      }
      int err = r < 0 ? errno : EIO;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || PeerGone(err)) return err;
      b->Pop(1);
      counters_[kSendQueued] -= 1;
      counters_[kSendErrors] += 1;
    }
    return 0;
  }

  // (Re)connects the doorbell to the peer's path, creating it if needed. 0 or an errno.
  int ConnectDoorbell(PeerBacklog* b) {
    const PeerAddr* p = table_.Get(b->peer);
    if (b->doorbell < 0) {
      int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) return errno;
      b->doorbell = fd;
    }
    int r;
    do {
      r = ::connect(b->doorbell, reinterpret_cast<const sockaddr*>(&p->addr), p->len);
    } while (r != 0 && errno == EINTR);
    return r == 0 ? 0 : errno;
  }

  // True when the doorbell reports writable now: the peer's queue has room.
  static bool PeerHasRoom(PeerBacklog* b) {
    pollfd pfd;
    pfd.fd = b->doorbell;
    pfd.events = POLLOUT;
    pfd.revents = 0;
    return ::poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT);
  }

  // Makes progress on a backlog and arranges its next wakeup: sends until empty or blocked; when
  // blocked, waits on the doorbell if the peer's queue is full, else on our own send buffer.
  // `blocked`: the caller just got EAGAIN for this peer (skip the first send attempt).
  void Service(PeerBacklog* b, bool blocked) {
    if (closed_ || fd_ < 0) return;
    SetWaitingOnSelf(b, false);
    for (int attempt = 0; attempt < 2; attempt++) {
      int err = blocked && attempt == 0 ? EAGAIN : SendBacklog(b);
      if (err == 0) {
        // Drained: stop watching, free the ring, keep the doorbell for the next burst.
        StopDoorbellPoll(b);
        Release(b);
        b->stuck = false;
        b->Clear();
        return;
      }
      if (!b->holding.empty() && b->Shallow()) Release(b);
      if (PeerGone(err)) {
        DropBacklog(b);
        return;
      }
      // Blocked. A new doorbell is connected once; an existing one is reconnected when it claims
      // room that the send did not find (its old peer may be dead, e.g. QEMU restarted and
      // rebound the path).
      if (b->doorbell < 0 || attempt > 0) {
        int c = ConnectDoorbell(b);
        if (c != 0) {
          // ENOENT/ECONNREFUSED: the peer is gone. Anything else (EMFILE, ...): no way to wait.
          DropBacklog(b);
          return;
        }
      }
      if (!PeerHasRoom(b)) {
        if (StartDoorbellPoll(b) != 0) DropBacklog(b);
        return;
      }
      // The peer has room: it read just now (send again), or the full buffer is our own.
    }
    StopDoorbellPoll(b);
    SetWaitingOnSelf(b, true);
    if (UpdateMainPoll() != 0) {
      SetWaitingOnSelf(b, false);
      DropBacklog(b);
    }
  }

  void SetWaitingOnSelf(PeerBacklog* b, bool on) {
    if (b->waitingOnSelf == on) return;
    b->waitingOnSelf = on;
    selfWaiters_ += on ? 1 : -1;
  }

  int StartDoorbellPoll(PeerBacklog* b) {
    if (!b->poll) {
      b->poll = new uv_poll_t;
      int r = uv_poll_init(loop_, b->poll, b->doorbell);
      if (r != 0) {
        delete b->poll;
        b->poll = nullptr;
        return r;
      }
      b->poll->data = b;
    }
    if (b->pollActive) return 0;
    int r = uv_poll_start(b->poll, UV_WRITABLE, OnDoorbell);
    if (r == 0) b->pollActive = true;
    return r;
  }

  static void StopDoorbellPoll(PeerBacklog* b) {
    if (b->poll && b->pollActive) uv_poll_stop(b->poll);
    b->pollActive = false;
  }

  // Closes the doorbell (poll handle first: libuv must not watch a closed fd).
  static void CloseDoorbell(PeerBacklog* b) {
    StopDoorbellPoll(b);
    if (b->poll) {
      uv_close(reinterpret_cast<uv_handle_t*>(b->poll), FreePoll);
      b->poll = nullptr;
    }
    if (b->doorbell >= 0) {
      ::close(b->doorbell);
      b->doorbell = -1;
    }
  }

  // The peer is gone (or cannot be waited for): its backlog is a counted loss, its doorbell is
  // closed, and its next datagram is sent afresh.
  void DropBacklog(PeerBacklog* b) {
    counters_[kSendErrors] += b->count;
    counters_[kSendQueued] -= b->count;
    SetWaitingOnSelf(b, false);
    CloseDoorbell(b);
    Release(b);
    b->stuck = false;
    b->Clear();
  }

  static void OnDoorbell(uv_poll_t* handle, int status, int events) {
    PeerBacklog* b = static_cast<PeerBacklog*>(handle->data);
    BatchSocket* self = b->owner;
    if (self->closed_ || self->fd_ < 0) return;
    if (status < 0) {
      // The doorbell failed (EBADF, ...): treat the peer as unreachable.
      self->DropBacklog(b);
      return;
    }
    self->Service(b, false);
  }

  // The main socket's send buffer has room again: retry every backlog that waited for it.
  void OnSelfWritable() {
    for (size_t id = 0; id < backlogs_.size() && selfWaiters_ > 0 && !closed_; id++) {
      PeerBacklog* b = backlogs_[id].get();
      if (b && b->waitingOnSelf) Service(b, false);
    }
    if (!closed_) UpdateMainPoll();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseNow();
    return info.Env().Undefined();
  }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    BusyLeave(this);
    // Backlogs: whatever still waits is dropped (a full-queue loss), doorbells closed.
    for (auto& b : backlogs_) {
      if (!b) continue;
      counters_[kSendDropped] += b->count;
      counters_[kSendErrors] += b->count;
      counters_[kSendQueued] -= b->count;
      CloseDoorbell(b.get());
      Release(b.get());
      CloseFlowTimer(b.get());
      b->Clear();
    }
    backlogs_.clear();
    selfWaiters_ = 0;
    if (poll_) {
      // The fd must not be closed while libuv still watches it: stop, then close the fd.
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), FreePoll);
      poll_ = nullptr;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (!callback_.IsEmpty()) callback_.Reset();
    if (referenced_) {
      referenced_ = false;
      Unref();
    }
  }

  static void FreePoll(uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    BatchSocket* self = static_cast<BatchSocket*>(handle->data);
    if (self->fd_ < 0) return;
    if (status < 0) {
      self->counters_[kRecvErrors] += 1;
      return;
    }
    if ((events & UV_WRITABLE) && self->selfWaiters_ > 0) self->OnSelfWritable();
    if ((events & UV_READABLE) && self->started_ && self->fd_ >= 0 && self->pausedBy_ == 0) {
      const int n = self->Receive();
      if (n > 0) BusySpin(n);
    }
  }

 public:
  int BusyFd() const override { return fd_ >= 0 && started_ && !closed_ && pausedBy_ == 0 ? fd_ : -1; }
  int BusyReceive() override { return Receive(); }
  bool BusyWaitsOnLoop() const override { return counters_ != nullptr && counters_[kSendQueued] > 0; }

 private:
  int Receive() {
    int delivered = 0;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (int round = 0; round < kMaxBatchesPerWakeup && fd_ >= 0; round++) {
      // Stage 2: recvmmsg rewrites msg_namelen and msg_flags, so reset them each round.
      for (int i = 0; i < batch_; i++) {
        rxHdrs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
        rxHdrs_[i].msg_hdr.msg_flags = 0;
      }
      int n = recvmmsg(fd_, rxHdrs_.data(), static_cast<unsigned>(batch_), MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) counters_[kRecvErrors] += 1;
        return delivered;
      }
      if (n == 0) return delivered;
      table_.NextRound();
      int out = 0;
      for (int i = 0; i < n; i++) {
        const msghdr& h = rxHdrs_[i].msg_hdr;
        // Stage 3: a truncated frame is useless to a switch; count it and close the gap (the
        // slots after it move down, a memmove on this rare path only).
        if (h.msg_flags & MSG_TRUNC) {
          counters_[kTruncated] += 1;
          continue;
        }
        // Stage 4: map the source to a peer id. A source outside the accept list gets none (and
        // leaves no state); a datagram without a usable id (an unbound unix sender, or the peer
        // table full) is dropped here, so every delivered peer id is valid.
        if (acceptOn_ && !Accepts(rxNames_[i])) {
          counters_[kNotAccepted] += 1;
          continue;
        }
        PeerAddr p;
        int id = Canonical(rxNames_[i], h.msg_namelen, &p) ? table_.Intern(p, false, true) : -1;
        if (id < 0) {
          counters_[kUnaddressable] += 1;
          continue;
        }
        uint32_t len = rxHdrs_[i].msg_len;
        if (out != i) {
          memmove(rxBase_ + static_cast<size_t>(out) * slotBytes_, rxBase_ + static_cast<size_t>(i) * slotBytes_, len);
        }
        lengths_[out] = static_cast<int32_t>(len);
        peers_[out] = id;
        out++;
      }
      NotePeers();
      // Stage 5: hand the batch to JS.
      if (out > 0) {
        delivered += out;
        napi_value argv[1] = {Napi::Number::New(env, out)};
        callback_.MakeCallback(Value(), 1, argv, *asyncContext_);
        if (env.IsExceptionPending()) {
          // No JS frame is below us to catch it: report it like any uncaught exception.
          Napi::Error e = env.GetAndClearPendingException();
          napi_fatal_exception(env, e.Value());
          return delivered;
        }
      }
      if (n < batch_) return delivered;  // The queue is drained; skip the EAGAIN round trip.
      if (pausedBy_ > 0) return delivered;  // a receiver is slow: leave the rest to its senders' queues
    }
    return delivered;
  }

  Napi::Value AddressObject(Napi::Env env, const PeerAddr& p) {
    Napi::Object o = Napi::Object::New(env);
    if (p.addr.ss_family == AF_INET) {
      const sockaddr_in* sin = reinterpret_cast<const sockaddr_in*>(&p.addr);
      char host[INET_ADDRSTRLEN] = "";
      inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
      o.Set("kind", "udp4");
      o.Set("host", host);
      o.Set("port", Napi::Number::New(env, ntohs(sin->sin_port)));
    } else {
      const sockaddr_un* sun = reinterpret_cast<const sockaddr_un*>(&p.addr);
      size_t n = p.len - offsetof(sockaddr_un, sun_path);
      if (sun->sun_path[0] != '\0' && n > 0) n--;  // Drop the terminating NUL of a pathname.
      o.Set("kind", "unix");
      o.Set("path", Napi::String::New(env, sun->sun_path, n));
    }
    return o;
  }

  Kind kind_ = Kind::kInet;
  int fd_ = -1;
  // The accept list (AcceptSources); off: every source is taken.
  bool acceptOn_ = false;
  std::vector<std::pair<uint32_t, uint32_t>> acceptNets_;   // (network, mask), host order
  std::vector<std::pair<uint32_t, uint32_t>> acceptExact_;  // (address, port), host order
  bool closed_ = false;
  bool started_ = false;
  bool referenced_ = false;
  uv_loop_t* loop_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::AsyncContext* asyncContext_ = nullptr;
  std::vector<Napi::ObjectReference> memory_;

  int batch_ = 0;
  int slotBytes_ = 0;
  uint8_t* rxBase_ = nullptr;
  int32_t* lengths_ = nullptr;
  int32_t* peers_ = nullptr;
  std::vector<mmsghdr> rxHdrs_;
  std::vector<iovec> rxIov_;
  std::vector<sockaddr_storage> rxNames_;

  int txCap_ = 0;
  uint8_t* txBase_ = nullptr;
  size_t txBytes_ = 0;
  int32_t* txOffs_ = nullptr;
  int32_t* txLens_ = nullptr;
  int32_t* txPeers_ = nullptr;
  int32_t* txSrcs_ = nullptr;
  int32_t rxSlabId_ = 0;
  std::vector<mmsghdr> txHdrs_;
  std::vector<iovec> txIov_;
  std::vector<int> txIds_;  // peer id of txHdrs_[i]
  std::vector<int> txSegs_;  // datagrams in txHdrs_[i] (> 1: a GSO message)
  std::vector<size_t> txMsgBytes_;  // payload bytes in txHdrs_[i]
  std::vector<int32_t> txMsgSrcs_;  // txSrcs of txHdrs_[i]'s datagram (unix: one per message)
  std::vector<uint8_t> txCtl_;  // one UDP_SEGMENT cmsg per message
  // UDP GSO: on for udp4 sockets that checksum (SO_NO_CHECK forbids it) when the kernel has it;
  // segments longer than gsoMaxSeg_ are never coalesced (lowered when a path refuses one).
  bool gso_ = false;
  size_t gsoMaxSeg_ = 65535;

  // Unix peer backlogs, indexed by peer id (created on a peer's first EAGAIN, kept until close).
  std::vector<std::unique_ptr<PeerBacklog>> backlogs_;
  int selfWaiters_ = 0;  // backlogs waiting for the main socket's own UV_WRITABLE
  int pausedBy_ = 0;     // backlogs (of any socket) that keep this one from reading (stage 6)
  bool flowControl_ = false;  // unix, opened with flowControl (off unless asked for): may be paused
  mmsghdr blHdrs_[kBacklogSendBatch];
  iovec blIov_[kBacklogSendBatch];

  double* counters_ = nullptr;
  PeerTable table_;
};


// ---------------------------------------------------------------------------------------------
// TAP devices (src/transports/tap via batch-io.ts openTapDevice / configureInterface).
//
// One fd from /dev/net/tun, attached with TUNSETIFF (IFF_TAP | IFF_NO_PI: every read() is one
// whole Ethernet frame, every write() sends one). There is no recvmmsg for a character device,
// so a wakeup costs one read() per frame, but still one JS call per batch:
//
// Receive stages (one libuv wakeup):
//   1. uv_poll_t reports the fd readable (level-triggered), or an error (device deleted:
//      tun_chr_poll reports EPOLLERR once the tun is detached).
//   2. read() into slot i of the JS-owned rx slab, until EAGAIN or batchSize frames.
//      A frame that fills its slot completely may have been cut short: counted, dropped.
//   3. The JS callback gets the count (MakeCallback, so the microtask queue drains).
//   4. Repeat from 2 up to kMaxBatchesPerWakeup batches (fairness), as BatchSocket does.
//   A read error other than EAGAIN/EINTR (EBADFD once the device is gone) stops the poll and
//   calls back once with -errno; the owner closes this object and reopens the device later.
//
// Send: write(buf+off, len) straight from the caller's buffer (the kernel copies into its skb;
// we copy nothing). The fd is O_NONBLOCK, so write() never blocks; the result is classified
// (TxResult) so JS counts the drop reason without building an error object per frame.

enum TxResult {
  kTxSent = 0,
  kTxFull = 1,   // EAGAIN/ENOBUFS/ENOMEM: the kernel would have to wait; dropped
  kTxDown = 2,   // EIO: the interface is administratively down
  kTxGone = 3,   // EBADFD/ENODEV/ENXIO: the device was deleted under us
  kTxError = 4,  // anything else (EINVAL for a runt, EFAULT, ...)
};

enum TapCounterIndex {
  kTapRecvErrors = 0,
  kTapTruncated = 1,
  kTapCounterCount = 2,
};

// What TapDevice and StreamReader share: one fd of theirs, read when a uv_poll_t on Node's loop
// says it is readable (T::OnReadable) and by busy polling (T::BusyReceive), delivering to a JS
// callback; closed once, before or after the fd failed. BatchSocket has its own: it also polls
// for writing and for its backlogs' doorbells.
template <typename T>
class PolledFd : public Napi::ObjectWrap<T>, public BusyPollable {
 public:
  explicit PolledFd(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T>(info) {}
  ~PolledFd() override {
    if (fd_ >= 0) ::close(fd_);
    delete asyncContext_;
  }
  int BusyFd() const override { return fd_ >= 0 && !closed_ && poll_ && !paused_ ? fd_ : -1; }

 protected:
  // start(callback): polls fd_ for reading from now on. `keepsLoopAlive` false: the poll does not
  // hold the process open (something beside it does). Throws (returns false) on a second start.
  bool StartPolling(const Napi::CallbackInfo& info, const char* cls, bool keepsLoopAlive) {
    Napi::Env env = info.Env();
    if (fd_ < 0 || closed_ || poll_ || !info[0].IsFunction()) {
      Napi::Error::New(env, std::string(cls) + ": start() needs an open fd, a callback, and may run once").ThrowAsJavaScriptException();
      return false;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
      Napi::Error::New(env, std::string(cls) + ": no libuv loop").ThrowAsJavaScriptException();
      return false;
    }
    poll_ = new uv_poll_t;
    int r = uv_poll_init(loop, poll_, fd_);
    if (r == 0) {
      poll_->data = this;
      r = uv_poll_start(poll_, UV_READABLE, OnPoll);
      if (r != 0) uv_close(reinterpret_cast<uv_handle_t*>(poll_), FreePoll);
    } else {
      delete poll_;
    }
    if (r != 0) {
      poll_ = nullptr;
      ErrnoError(env, -r, "uv_poll_start", cls).ThrowAsJavaScriptException();
      return false;
    }
    if (!keepsLoopAlive) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    this->Ref();
    referenced_ = true;
    BusyJoin(this);
    return true;
  }

  // Stops reading for good (the fd stays open until CloseNow).
  void StopPoll() {
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), FreePoll);
      poll_ = nullptr;
    }
  }

  // Stops and starts reading for a while (flow control).
  void SetPaused(bool paused) {
    if (poll_ && !closed_ && paused != paused_) {
      if (paused) uv_poll_stop(poll_);
      else uv_poll_start(poll_, UV_READABLE, OnPoll);
    }
    paused_ = paused;
  }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    BusyLeave(this);
    StopPoll();  // Before closing the fd: libuv must not watch a closed fd.
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (!callback_.IsEmpty()) callback_.Reset();
    if (referenced_) {
      referenced_ = false;
      this->Unref();
    }
  }

  // Calls JS with one number (an exception there is Node's uncaught exception); returns what JS
  // returned, as a number (0 when it was not one).
  int Call(Napi::Env env, double arg) {
    napi_value argv[1] = {Napi::Number::New(env, arg)};
    Napi::Value r = callback_.MakeCallback(this->Value(), 1, argv, *asyncContext_);
    if (env.IsExceptionPending()) {
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env, e.Value());
      return 0;
    }
    return !r.IsEmpty() && r.IsNumber() ? r.template As<Napi::Number>().Int32Value() : 0;
  }

  // True while reading may go on: open, polled, not paused (JS may close or pause us in a callback).
  bool Reading() const { return fd_ >= 0 && !closed_ && poll_ && !paused_; }

  int fd_ = -1;
  bool closed_ = false;
  bool paused_ = false;
  bool referenced_ = false;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::AsyncContext* asyncContext_ = nullptr;

 private:
  static void FreePoll(uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    T* self = static_cast<T*>(static_cast<PolledFd*>(handle->data));
    if (self->fd_ < 0 || self->closed_) return;
    const int n = self->OnReadable(status);
    if (n > 0) BusySpin(n);
  }
};

class TapDevice : public PolledFd<TapDevice> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "TapDevice", {
      InstanceMethod<&TapDevice::Open>("open"),
      InstanceMethod<&TapDevice::Start>("start"),
      InstanceMethod<&TapDevice::Write>("write"),
      InstanceMethod<&TapDevice::Close>("close"),
    });
    exports.Set("TapDevice", ctor);
  }

  // new TapDevice(rxSlab, slotBytes, lengths, counters): JS-owned memory, kept for our life.
  explicit TapDevice(const Napi::CallbackInfo& info) : PolledFd<TapDevice>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 4 || !info[0].IsBuffer() || !info[1].IsNumber() || !info[2].IsTypedArray() ||
        !info[3].IsTypedArray()) {
      Napi::TypeError::New(env, "TapDevice: bad constructor arguments (use batch-io.ts)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Buffer<uint8_t> rx = info[0].As<Napi::Buffer<uint8_t>>();
    slotBytes_ = info[1].As<Napi::Number>().Int32Value();
    Napi::Int32Array lengths = info[2].As<Napi::Int32Array>();
    Napi::Float64Array counters = info[3].As<Napi::Float64Array>();
    batch_ = static_cast<int>(lengths.ElementLength());
    if (batch_ < 1 || batch_ > kMaxBatch || slotBytes_ < 1 ||
        rx.Length() < static_cast<size_t>(batch_) * static_cast<size_t>(slotBytes_) ||
        counters.ElementLength() < kTapCounterCount) {
      Napi::RangeError::New(env, "TapDevice: inconsistent slab or array sizes (use batch-io.ts)").ThrowAsJavaScriptException();
      return;
    }
    rxBase_ = rx.Data();
    lengths_ = lengths.Data();
    counters_ = counters.Data();
    for (size_t i = 0; i < 4; i++) {
      if (i != 1) memory_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    }
    asyncContext_ = new Napi::AsyncContext(env, "lanparty:tap-device");
  }

 private:
  // open(name, create) -> {name, ifindex}. Without `create`, an absent device is ENODEV (TUNSETIFF
  // would otherwise create it, or fail with EPERM for an unprivileged user, which misleads).
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ >= 0 || closed_) {
      Napi::Error::New(env, "TapDevice: open() called twice").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string name = info[0].As<Napi::String>().Utf8Value();
    bool create = info[1].ToBoolean().Value();
    if (name.empty() || name.size() >= IFNAMSIZ) {
      ErrnoError(env, EINVAL, "TUNSETIFF", name).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!create && if_nametoindex(name.c_str()) == 0) {
      ErrnoError(env, ENODEV, "TUNSETIFF", name).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      ErrnoError(env, errno, "open", "/dev/net/tun").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    memcpy(ifr.ifr_name, name.data(), name.size());
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
      int err = errno;
      ::close(fd);
      ErrnoError(env, err, "TUNSETIFF", name).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    fd_ = fd;
    std::string actual(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", actual);
    o.Set("ifindex", Napi::Number::New(env, if_nametoindex(actual.c_str())));
    return o;
  }

  // start(callback): callback(count) per batch; callback(-errno) once when the device fails.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    StartPolling(info, "TapDevice", true);
    return info.Env().Undefined();
  }

  // write(buf, off, len) -> TxResult. One frame, straight from the caller's memory.
  Napi::Value Write(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    void* data = nullptr;
    size_t size = 0;
    uint32_t off = 0, len = 0;
    int result = kTxError;
    if (fd_ < 0) {
      result = kTxGone;
    } else if (napi_get_buffer_info(env, info[0], &data, &size) == napi_ok &&
               napi_get_value_uint32(env, info[1], &off) == napi_ok &&
               napi_get_value_uint32(env, info[2], &len) == napi_ok && static_cast<size_t>(off) + len <= size) {
      ssize_t r;
      do {
        r = ::write(fd_, static_cast<uint8_t*>(data) + off, len);
      } while (r < 0 && errno == EINTR);
      if (r >= 0) {
        result = kTxSent;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == ENOMEM) {
        result = kTxFull;
      } else if (errno == EIO) {
        result = kTxDown;
      } else if (errno == EBADFD || errno == ENODEV || errno == ENXIO) {
        result = kTxGone;
      }
    }
    napi_value v;
    napi_create_int32(env, result, &v);
    return Napi::Value(env, v);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseNow();
    return info.Env().Undefined();
  }

 public:
  int OnReadable(int status) {
    if (status < 0) {
      Fail(-status);
      return 0;
    }
    // EPOLLERR arrives with UV_READABLE set (libuv adds it), so read() reports the errno.
    return Receive();
  }
  int BusyReceive() override { return Receive(); }

 private:

  // Stops reading and tells JS once; the fd stays open until close() (writes then report kTxGone
  // or kTxDown by themselves).
  void Fail(int err) {
    counters_[kTapRecvErrors] += 1;
    StopPoll();
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Call(env, -err);
  }

  int Receive() {
    int delivered = 0;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (int round = 0; round < kMaxBatchesPerWakeup && Reading(); round++) {
      int out = 0;
      int err = 0;
      while (out < batch_) {
        uint8_t* slot = rxBase_ + static_cast<size_t>(out) * slotBytes_;
        ssize_t r = ::read(fd_, slot, static_cast<size_t>(slotBytes_));
        if (r < 0) {
          if (errno == EINTR) continue;
          if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
          break;
        }
        if (r >= slotBytes_) {
          counters_[kTapTruncated] += 1;  // The slot is one byte larger than the largest frame.
          continue;
        }
        lengths_[out++] = static_cast<int32_t>(r);
      }
      if (out > 0) {
        delivered += out;
        Call(env, out);
        if (!Reading()) return delivered;  // JS closed us from the callback.
      }
      if (err != 0) {
        Fail(err);
        return delivered;
      }
      if (out < batch_) return delivered;
    }
    return delivered;
  }

  std::vector<Napi::ObjectReference> memory_;
  int batch_ = 0;
  int slotBytes_ = 0;
  uint8_t* rxBase_ = nullptr;
  int32_t* lengths_ = nullptr;
  double* counters_ = nullptr;
};

// StreamReader: reads one connected stream socket (QEMU's tcp or unix stream netdev) for
// src/transports/stream, so that reading a stream port costs what reading a datagram port costs:
// no Buffer per read, no trip through Node's stream machinery, and busy polling reads it in its
// spin like any other BusyPollable. Node's net.Socket keeps the
// connection (connect, accept, writes, 'drain', close); it never reads it (JS opens it paused).
//   new StreamReader(fd, slab): reads into the JS-owned slab on a dup of fd, so Node closing its
//     own fd does not close ours, and the other way round.
//   start(callback): callback(n) with n > 0 bytes at slab[0, n), every read; it returns how many
//     frames they completed (busy polling's count). callback(0) at end of stream and
//     callback(-errno) on an error, once: reading has stopped then.
//   pause() / resume(): stop and start reading (flow control); close(): stop and close the dup.
//   useSlab(buffer): read into this buffer from the next read on (the callback may call it: JS
//     handed a view of the old slab to a socket that keeps it, a write that did not complete).
// The slab is rewritten by the next read, which never happens while the callback runs: JS frames
// the bytes synchronously (StreamFramer copies only a frame that continues into the next read).
class StreamReader : public PolledFd<StreamReader> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "StreamReader", {
      InstanceMethod<&StreamReader::Start>("start"),
      InstanceMethod<&StreamReader::Pause>("pause"),
      InstanceMethod<&StreamReader::Resume>("resume"),
      InstanceMethod<&StreamReader::Close>("close"),
      InstanceMethod<&StreamReader::UseSlab>("useSlab"),
    });
    exports.Set("StreamReader", ctor);
  }

  explicit StreamReader(const Napi::CallbackInfo& info) : PolledFd<StreamReader>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsBuffer()) {
      Napi::TypeError::New(env, "StreamReader: bad constructor arguments (use batch-io.ts)").ThrowAsJavaScriptException();
      return;
    }
    const int fd = info[0].As<Napi::Number>().Int32Value();
    Napi::Buffer<uint8_t> slab = info[1].As<Napi::Buffer<uint8_t>>();
    if (fd < 0 || slab.Length() < 4) {
      Napi::RangeError::New(env, "StreamReader: needs an fd and a slab of at least 4 bytes").ThrowAsJavaScriptException();
      return;
    }
    fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (fd_ < 0) {
      ErrnoError(env, errno, "dup", "stream socket").ThrowAsJavaScriptException();
      return;
    }
    const int flags = fcntl(fd_, F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
    base_ = slab.Data();
    bytes_ = slab.Length();
    memory_ = Napi::Persistent(info[1].As<Napi::Object>());
    asyncContext_ = new Napi::AsyncContext(env, "lanparty:stream-reader");
  }

  int OnReadable(int status) {
    if (status < 0) {
      End(status);
      return 0;
    }
    return Receive();
  }
  int BusyReceive() override { return Receive(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    // The net.Socket beside us keeps the loop alive while the connection is open.
    StartPolling(info, "StreamReader", false);
    return info.Env().Undefined();
  }
  Napi::Value Pause(const Napi::CallbackInfo& info) {
    SetPaused(true);
    return info.Env().Undefined();
  }
  Napi::Value Resume(const Napi::CallbackInfo& info) {
    SetPaused(false);
    return info.Env().Undefined();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseNow();
    return info.Env().Undefined();
  }
  Napi::Value UseSlab(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsBuffer() || info[0].As<Napi::Buffer<uint8_t>>().Length() < 4) {
      Napi::TypeError::New(env, "StreamReader.useSlab: needs a buffer of at least 4 bytes").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> slab = info[0].As<Napi::Buffer<uint8_t>>();
    base_ = slab.Data();
    bytes_ = slab.Length();
    memory_ = Napi::Persistent(info[0].As<Napi::Object>());
    return env.Undefined();
  }

  // End of stream (0) or an error (-errno): stop reading, tell JS once.
  void End(int code) {
    StopPoll();
    if (callback_.IsEmpty()) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Call(env, code);
    if (!callback_.IsEmpty()) callback_.Reset();
  }

  // Reads until the socket is empty (a read shorter than the slab), or kMaxBatchesPerWakeup
  // reads (fairness with the other sockets; level triggering brings us back).
  int Receive() {
    int frames = 0;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (int round = 0; round < kMaxBatchesPerWakeup && Reading(); round++) {
      ssize_t r;
      do {
        r = ::read(fd_, base_, bytes_);
      } while (r < 0 && errno == EINTR);
      if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) End(-errno);
        return frames;
      }
      if (r == 0) {
        End(0);
        return frames;
      }
      frames += Call(env, static_cast<double>(r));
      if (static_cast<size_t>(r) < bytes_) return frames;
    }
    return frames;
  }

  Napi::ObjectReference memory_;
  uint8_t* base_ = nullptr;
  size_t bytes_ = 0;
};

// configureInterface(name, address, prefixLength, mtu, up): the classic interface ioctls on an
// AF_INET socket (what ifconfig does). address '' = leave alone; mtu 0 = leave alone. Needs
// CAP_NET_ADMIN. Chosen over spawning `ip`: synchronous, no dependency on iproute2 at run time,
// and the errno comes back exact. IPv4 only, one address (SIOCSIFADDR replaces the primary one).
Napi::Value ConfigureInterface(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  std::string address = info[1].As<Napi::String>().Utf8Value();
  int prefix = info[2].ToNumber().Int32Value();
  int mtu = info[3].ToNumber().Int32Value();
  bool up = info[4].ToBoolean().Value();
  if (name.empty() || name.size() >= IFNAMSIZ || prefix < 0 || prefix > 32) {
    ErrnoError(env, EINVAL, "configure", name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    ErrnoError(env, errno, "socket", name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ifreq ifr;
  auto reset = [&]() {
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, name.data(), name.size());
  };
  auto inet = [&](uint32_t hostOrder) {
    sockaddr_in* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(hostOrder);
  };
  const char* failed = nullptr;
  if (mtu > 0) {
    reset();
    ifr.ifr_mtu = mtu;
    if (ioctl(s, SIOCSIFMTU, &ifr) != 0) failed = "SIOCSIFMTU";
  }
  if (!failed && !address.empty()) {
    in_addr a;
    if (inet_pton(AF_INET, address.c_str(), &a) != 1) {
      ::close(s);
      ErrnoError(env, EINVAL, "inet_pton", address).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    reset();
    inet(ntohl(a.s_addr));
    if (ioctl(s, SIOCSIFADDR, &ifr) != 0) {
      failed = "SIOCSIFADDR";
    } else {
      reset();
      inet(prefix == 0 ? 0 : 0xffffffffu << (32 - prefix));
      if (ioctl(s, SIOCSIFNETMASK, &ifr) != 0) failed = "SIOCSIFNETMASK";
    }
  }
  if (!failed && up) {
    reset();
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
      failed = "SIOCGIFFLAGS";
    } else if (!(ifr.ifr_flags & IFF_UP)) {
      ifr.ifr_flags |= IFF_UP;
      if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) failed = "SIOCSIFFLAGS";
    }
  }
  int err = errno;
  ::close(s);
  if (failed) ErrnoError(env, err, failed, name).ThrowAsJavaScriptException();
  return env.Undefined();
}

// interfaceState(name) -> {ifindex, flags} or null when there is no such interface in this
// process's network namespace. An ioctl rather than /sys/class/net, whose view belongs to the
// namespace that mounted sysfs (under `unshare --net` that is the parent's).
Napi::Value InterfaceState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.empty() || name.size() >= IFNAMSIZ) return env.Null();
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    ErrnoError(env, errno, "socket", name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, name.data(), name.size());
  int flagsOk = ioctl(s, SIOCGIFFLAGS, &ifr);
  int flags = ifr.ifr_flags & 0xffff;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, name.data(), name.size());
  int indexOk = ioctl(s, SIOCGIFINDEX, &ifr);
  int err = errno;
  ::close(s);
  if (flagsOk != 0 || indexOk != 0) {
    if (err == ENODEV || err == ENXIO) return env.Null();
    ErrnoError(env, err, "SIOCGIFFLAGS", name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("ifindex", Napi::Number::New(env, ifr.ifr_ifindex));
  o.Set("flags", Napi::Number::New(env, flags));
  return o;
}


// ---------------------------------------------------------------------------------------------
// ChaCha20-Poly1305 (RFC 8439) for the encrypted peer links' data packets (src/transports/wg via
// batch-io.ts nativeAead), through the OpenSSL that Node itself is built with (its headers ship
// with Node's; the symbols resolve in the node process). Node's crypto API builds a Cipheriv
// object (and several Buffers) per packet, which costs more than the cipher; here one
// EVP_CIPHER_CTX per direction is kept and only the key and nonce change per call. Nothing is
// allocated per packet. The WireGuard nonce is 32 zero bits then the 64-bit little-endian counter.
//
//   aeadSeal(key, ctrLo, ctrHi, src, srcOff, srcLen, padded, dst, dstOff) -> padded + 16, or -1
//     seals src[srcOff, +srcLen) followed by (padded - srcLen) zero bytes (WireGuard's padding,
//     0..15 bytes) into dst[dstOff, +padded) and writes the 16-byte tag after it. No AAD.
//   aeadOpen(key, ctrLo, ctrHi, src, srcOff, srcLen, dst, dstOff) -> srcLen - 16, or -1
//     opens ciphertext + tag src[srcOff, +srcLen) into dst[dstOff, +srcLen - 16); -1 when the tag
//     does not verify (dst may then hold garbage: the caller discards it) or on bad arguments.
#if LP_HAVE_OPENSSL

namespace {

struct AeadState {
  EVP_CIPHER_CTX* seal = nullptr;
  EVP_CIPHER_CTX* open = nullptr;
  bool ok = false;
  AeadState() {
    seal = EVP_CIPHER_CTX_new();
    open = EVP_CIPHER_CTX_new();
    ok = seal && open &&
         EVP_EncryptInit_ex(seal, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr) == 1 &&
         EVP_DecryptInit_ex(open, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr) == 1;
  }
};

AeadState& Aead() {
  static AeadState s;  // The data path runs on the main thread only.
  return s;
}

bool BufferArg(napi_env env, napi_value v, uint8_t** data, size_t* size) {
  void* d = nullptr;
  if (napi_get_buffer_info(env, v, &d, size) != napi_ok) return false;
  *data = static_cast<uint8_t*>(d);
  return true;
}

bool U32Arg(napi_env env, napi_value v, uint32_t* out) { return napi_get_value_uint32(env, v, out) == napi_ok; }

void WgNonce(uint8_t nonce[12], uint32_t lo, uint32_t hi) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 4; i++) {
    nonce[4 + i] = static_cast<uint8_t>(lo >> (8 * i));
    nonce[8 + i] = static_cast<uint8_t>(hi >> (8 * i));
  }
}

// Both are plain N-API callbacks with the arguments in a stack array: Napi::CallbackInfo keeps
// six on the stack and allocates for more, and these two run once per packet.
napi_value NumberOut(napi_env env, double v) {
  napi_value r = nullptr;
  napi_create_double(env, v, &r);
  return r;
}

napi_value AeadSeal(napi_env env, napi_callback_info cb) {
  napi_value info[9];
  size_t argc = 9;
  if (napi_get_cb_info(env, cb, &argc, info, nullptr, nullptr) != napi_ok) return nullptr;
  uint8_t *key, *src, *dst;
  size_t keyLen, srcSize, dstSize;
  uint32_t lo, hi, srcOff, srcLen, padded, dstOff;
  AeadState& a = Aead();
  if (argc != 9 || !a.ok || !BufferArg(env, info[0], &key, &keyLen) || keyLen != 32 ||
      !U32Arg(env, info[1], &lo) || !U32Arg(env, info[2], &hi) || !BufferArg(env, info[3], &src, &srcSize) ||
      !U32Arg(env, info[4], &srcOff) || !U32Arg(env, info[5], &srcLen) || !U32Arg(env, info[6], &padded) ||
      !BufferArg(env, info[7], &dst, &dstSize) || !U32Arg(env, info[8], &dstOff) ||
      static_cast<size_t>(srcOff) + srcLen > srcSize || padded < srcLen || padded - srcLen > 15 ||
      static_cast<size_t>(dstOff) + padded + 16 > dstSize) {
    return NumberOut(env, -1);
  }
  static const uint8_t kZeros[16] = {0};
  uint8_t nonce[12];
  WgNonce(nonce, lo, hi);
  uint8_t* out = dst + dstOff;
  int n = 0, m = 0, f = 0;
  bool ok = EVP_EncryptInit_ex(a.seal, nullptr, nullptr, key, nonce) == 1 &&
            EVP_EncryptUpdate(a.seal, out, &n, src + srcOff, static_cast<int>(srcLen)) == 1 &&
            (padded == srcLen || EVP_EncryptUpdate(a.seal, out + n, &m, kZeros, static_cast<int>(padded - srcLen)) == 1) &&
            EVP_EncryptFinal_ex(a.seal, out + n + m, &f) == 1 &&
            static_cast<uint32_t>(n + m + f) == padded &&
            EVP_CIPHER_CTX_ctrl(a.seal, EVP_CTRL_AEAD_GET_TAG, 16, out + padded) == 1;
  return NumberOut(env, ok ? static_cast<double>(padded + 16) : -1);
}

napi_value AeadOpen(napi_env env, napi_callback_info cb) {
  napi_value info[8];
  size_t argc = 8;
  if (napi_get_cb_info(env, cb, &argc, info, nullptr, nullptr) != napi_ok) return nullptr;
  uint8_t *key, *src, *dst;
  size_t keyLen, srcSize, dstSize;
  uint32_t lo, hi, srcOff, srcLen, dstOff;
  AeadState& a = Aead();
  if (argc != 8 || !a.ok || !BufferArg(env, info[0], &key, &keyLen) || keyLen != 32 ||
      !U32Arg(env, info[1], &lo) || !U32Arg(env, info[2], &hi) || !BufferArg(env, info[3], &src, &srcSize) ||
      !U32Arg(env, info[4], &srcOff) || !U32Arg(env, info[5], &srcLen) || srcLen < 16 ||
      !BufferArg(env, info[6], &dst, &dstSize) || !U32Arg(env, info[7], &dstOff) ||
      static_cast<size_t>(srcOff) + srcLen > srcSize || static_cast<size_t>(dstOff) + (srcLen - 16) > dstSize) {
    return NumberOut(env, -1);
  }
  uint8_t nonce[12];
  WgNonce(nonce, lo, hi);
  uint32_t body = srcLen - 16;
  // The tag is copied first: src and dst may be the same buffer.
  uint8_t tag[16];
  memcpy(tag, src + srcOff + body, 16);
  int n = 0, f = 0;
  bool ok = EVP_DecryptInit_ex(a.open, nullptr, nullptr, key, nonce) == 1 &&
            EVP_DecryptUpdate(a.open, dst + dstOff, &n, src + srcOff, static_cast<int>(body)) == 1 &&
            EVP_CIPHER_CTX_ctrl(a.open, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1 &&
            EVP_DecryptFinal_ex(a.open, dst + dstOff + n, &f) == 1 &&
            static_cast<uint32_t>(n + f) == body;
  return NumberOut(env, ok ? static_cast<double>(body) : -1);
}

void InitAead(Napi::Env env, Napi::Object exports) {
  napi_value seal = nullptr, open = nullptr;
  if (napi_create_function(env, "aeadSeal", NAPI_AUTO_LENGTH, AeadSeal, nullptr, &seal) == napi_ok) exports.Set("aeadSeal", seal);
  if (napi_create_function(env, "aeadOpen", NAPI_AUTO_LENGTH, AeadOpen, nullptr, &open) == napi_ok) exports.Set("aeadOpen", open);
}

}  // namespace
#else
namespace {
// Without OpenSSL headers the addon has no AEAD; batch-io.ts then leaves it to node:crypto.
void InitAead(Napi::Env, Napi::Object) {}
}  // namespace
#endif

// setBusyPoll(us?, budgetPercent?): sets the busy-poll time (0: off; clamped to kBusyPollMaxUs)
// and the share of one core its idle spinning may use (1-100), each when given; returns
// [us, budget percent, spins started, frames read while spinning, idle µs spent, spins skipped
//  (budget spent), spins not started (a load), the rate bound, frames/s over the last measured
//  window, the batch bound].
Napi::Value SetBusyPoll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() > 0 && info[0].IsNumber()) {
    int64_t us = info[0].As<Napi::Number>().Int64Value();
    g_busy.us = us < 0 ? 0 : (us > kBusyPollMaxUs ? kBusyPollMaxUs : us);
  }
  if (info.Length() > 1 && info[1].IsNumber()) {
    int64_t pct = info[1].As<Napi::Number>().Int64Value();
    g_busy.budgetPerMille = 10 * (pct < 1 ? 1 : (pct > 100 ? 100 : pct));
  }
  if (g_busy.refilledAt == 0) {
    g_busy.refilledAt = MonoUs();
    g_busy.tokensUs = kBusyPollBurstUs;
  }
  const double v[10] = {static_cast<double>(g_busy.us), static_cast<double>(g_busy.budgetPerMille) / 10, g_busy.spins,
                        g_busy.frames, g_busy.idleUs, g_busy.skipped, g_busy.loaded, kBusyPollMaxRate, g_busy.rate,
                        static_cast<double>(kBusyPollMaxBatch)};
  Napi::Array a = Napi::Array::New(env, 10);
  for (uint32_t i = 0; i < 10; i++) a.Set(i, Napi::Number::New(env, v[i]));
  return a;
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  BatchSocket::Init(env, exports);
  exports.Set("interfaceState", Napi::Function::New<InterfaceState>(env, "interfaceState"));
  exports.Set("setBusyPoll", Napi::Function::New<SetBusyPoll>(env, "setBusyPoll"));
  TapDevice::Init(env, exports);
  StreamReader::Init(env, exports);
  exports.Set("configureInterface", Napi::Function::New<ConfigureInterface>(env, "configureInterface"));
  InitAead(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(lanparty_native, InitModule)
