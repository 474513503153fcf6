// The peer table: one socket's map from canonical source address to a small peer id, bounded,
// with least-recently-heard eviction when the owner opts in (receive stage 4 in docs/data-path.md).
#pragma once

#include <sys/socket.h>
#include <string.h>

#include <cstdint>
#include <vector>

namespace lanparty {

// Upper bound on live peer ids per socket (a socket may be opened with a smaller maxPeers); beyond
// it a new source gets id -1, or evicts the least recently heard one (PeerTable), so a flood of
// spoofed sources cannot grow memory without limit.
constexpr int kMaxPeers = 65536;
// Evicted ids that JS has not released yet, at most (PeerTable); the id space is the live ids
// plus these.
constexpr int kEvictedMax = 1024;
constexpr int kMaxPeerIds = kMaxPeers + kEvictedMax;

// A peer address in canonical form, so that equal addresses compare equal byte for byte.
struct PeerAddr {
  sockaddr_storage addr;
  socklen_t len;
};

// Canonicalises a received or constructed sockaddr. Returns false for addresses that cannot be
// replied to (an unbound unix sender, an unknown family).
bool Canonical(const sockaddr_storage& in, socklen_t inLen, PeerAddr* out);

// SipHash-1-3 of n bytes at p under the key (k0, k1).
uint64_t SipHash13(uint64_t k0, uint64_t k1, const uint8_t* p, size_t n);

// The peer tables' hash key: 128 random bits drawn once per process (getrandom, else
// std::random_device), so bucket collisions cannot be planned from outside.
struct PeerHashKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
  PeerHashKey();
};

const PeerHashKey& HashKey();

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

}  // namespace lanparty
