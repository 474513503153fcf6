// The rx slab registry (rx_slabs.h).
#include "rx_slabs.h"

#include <mutex>

namespace lanparty {

RxSlabEntry gRxSlabs[kMaxRxSlabs];
int32_t gRxSlabGeneration = 0;
std::mutex gRxSlabsLock;

int32_t RegisterRxSlab(uint8_t* base, size_t bytes, BatchSocket* owner) {
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
RxSlabEntry LookupRxSlab(int32_t id) {
  if (id <= 0) return {nullptr, 0, 0, nullptr};
  const RxSlabEntry& e = gRxSlabs[id & (kMaxRxSlabs - 1)];
  return e.id == id ? e : RxSlabEntry{nullptr, 0, 0, nullptr};
}

void UnregisterRxSlab(int32_t id) {
  if (id <= 0) return;
  std::lock_guard<std::mutex> hold(gRxSlabsLock);
  RxSlabEntry& e = gRxSlabs[id & (kMaxRxSlabs - 1)];
  if (e.id == id) e = {nullptr, 0, 0, nullptr};
}

}  // namespace lanparty
