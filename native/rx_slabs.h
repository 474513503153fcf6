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

int32_t RegisterRxSlab(uint8_t* base, size_t bytes, BatchSocket* owner);
// The slab an id names, or {nullptr, 0} when that registration is gone (or the id is not one).
RxSlabEntry LookupRxSlab(int32_t id);
void UnregisterRxSlab(int32_t id);

}  // namespace lanparty
