// One unix peer's send backlog (send stages 3-6 in docs/data-path.md): a bounded byte ring of
// datagrams waiting for the receiver's queue, the doorbell socket that says when it has room,
// and the flow-control state that pauses the sockets feeding a deep backlog.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace lanparty {

class BatchSocket;

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

}  // namespace lanparty
