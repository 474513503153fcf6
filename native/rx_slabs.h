// The registry of rx slabs that other sockets' flushes may send from without a copy.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lanparty {

class BatchSocket;

// Rx slabs that a flush may read frames from without a copy (send stage 1). An id is a slot
// (low kRxSlabSlotBits) plus that registration's generation, so an id kept after its socket was
// destroyed never names the next slab in the slot. Id 0 is never given out: it means the sender's
// own tx slab. A fixed array, so a flush never reads it mid-reallocation; with every slot taken, a
// slab gets 0 and frames from it are copied as before. One registry per Node instance (Instance):
// a worker thread's sockets never see another thread's slabs, so nothing here is locked.
constexpr int kRxSlabSlotBits = 12;
constexpr int kMaxRxSlabs = 1 << kRxSlabSlotBits;
struct RxSlabEntry {
  uint8_t* base;
  size_t bytes;
  int32_t id;
  BatchSocket* owner;  // the socket that receives into it (flow control pauses it)
};

class RxSlabs {
 public:
  // A new id for the slab (0: every slot is taken).
  int32_t Register(uint8_t* base, size_t bytes, BatchSocket* owner);
  // The slab an id names, or {nullptr, 0} when that registration is gone (or the id is not one).
  RxSlabEntry Lookup(int32_t id) const {
    if (id <= 0) return {nullptr, 0, 0, nullptr};
    const RxSlabEntry& e = entries_[id & (kMaxRxSlabs - 1)];
    return e.id == id ? e : RxSlabEntry{nullptr, 0, 0, nullptr};
  }
  void Unregister(int32_t id);

 private:
  RxSlabEntry entries_[kMaxRxSlabs] = {};
  int32_t generation_ = 0;
};

}  // namespace lanparty
