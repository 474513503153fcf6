// Busy polling: after a wakeup that delivered frames, keep reading every socket and TAP device
// for a while before libuv sleeps again, within a CPU budget and only at a light load.
#pragma once

#include <poll.h>

#include <cstdint>
#include <vector>

namespace lanparty {

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

// Busy polling (setBusyPoll(us); `lanparty up --busy-poll US`): after a libuv wakeup that
// delivered frames, BusySpin() keeps polling every started socket and TAP device (poll(2) with a
// zero timeout, sched_yield() between passes) until BusyPoll::us microseconds pass without a frame,
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
  int64_t refilledAt = 0;                // time of the last refill (µs, the caller's clock)
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

// Adds a started reader to the spin's members, and removes a closed one.
void BusyJoin(BusyPoll& b, BusyPollable* m);
void BusyLeave(BusyPoll& b, BusyPollable* m);
// CLOCK_MONOTONIC in microseconds.
int64_t MonoUs();
// Called after a wakeup delivered `delivered` frames.
void BusySpin(BusyPoll& b, int delivered);

// The policy, with no clock of its own (the caller passes the time, so a test can step it):
// whether a wakeup at nowUs that delivered `delivered` frames may spin (it updates the rate
// window and refills the bucket, and counts a refusal in loaded or skipped) ...
bool BusyPollDecide(BusyPoll& b, int64_t nowUs, int delivered);
// ... and billing a spin's idle microseconds to the bucket.
void BusyPollCharge(BusyPoll& b, int64_t idleUs);

}  // namespace lanparty
