// The rx slab registry (rx_slabs.h).
#include "rx_slabs.h"

namespace lanparty {

int32_t RxSlabs::Register(uint8_t* base, size_t bytes, BatchSocket* owner) {
  for (int slot = 1; slot < kMaxRxSlabs; slot++) {
    if (entries_[slot].base == nullptr) {
      generation_ = (generation_ + 1) & ((1 << (31 - kRxSlabSlotBits)) - 1);
      int32_t id = (generation_ << kRxSlabSlotBits) | slot;
      entries_[slot] = {base, bytes, id, owner};
      return id;
    }
  }
  return 0;
}

void RxSlabs::Unregister(int32_t id) {
  if (id <= 0) return;
  RxSlabEntry& e = entries_[id & (kMaxRxSlabs - 1)];
  if (e.id == id) e = {nullptr, 0, 0, nullptr};
}

}  // namespace lanparty
