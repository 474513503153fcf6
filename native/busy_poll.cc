// The busy-poll spin and its setBusyPoll() control (busy_poll.h).
#include "busy_poll.h"
#include "init.h"
#include "instance.h"

#include <napi.h>
#include <sched.h>
#include <time.h>

namespace lanparty {

void BusyJoin(BusyPoll& b, BusyPollable* m) { b.members.push_back(m); }

void BusyLeave(BusyPoll& b, BusyPollable* m) {
  for (size_t i = 0; i < b.members.size(); i++) {
    if (b.members[i] != m) continue;
    b.members.erase(b.members.begin() + static_cast<std::ptrdiff_t>(i));
    b.leaves += 1;
    return;
  }
}

int64_t MonoUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// Called after a wakeup delivered `delivered` frames.
void BusySpin(BusyPoll& b, int delivered) {
  if (b.us <= 0 || b.spinning) return;
  const int64_t start = MonoUs();
  // A window ends at the first wakeup after it; a whole window without frames is light again,
  // whatever came before.
  const bool quiet = start - b.lastDelivery >= kBusyPollRateWindowUs;
  if (quiet || start - b.windowStart >= kBusyPollRateWindowUs) {
    b.rate = quiet ? 0 : b.windowFrames * 1e6 / static_cast<double>(start - b.windowStart);
    b.windowStart = start;
    b.windowFrames = 0;
  }
  b.lastDelivery = start;
  b.windowFrames += delivered;
  if (b.rate > kBusyPollMaxRate || delivered > kBusyPollMaxBatch) {
    b.loaded += 1;
    return;
  }
  b.tokensUs += (start - b.refilledAt) * b.budgetPerMille / 1000;
  if (b.tokensUs > kBusyPollBurstUs) b.tokensUs = kBusyPollBurstUs;
  b.refilledAt = start;
  if (b.tokensUs < b.us) {  // Not enough for a whole spin: sleep, let it refill.
    b.skipped += 1;
    return;
  }
  b.spinning = true;
  b.spins += 1;
  int64_t last = start;
  int64_t busyUs = 0;  // time inside BusyReceive (frames), not charged
  int read = 0;  // frames read while spinning
  while (read <= kBusyPollMaxBatch) {
    const int64_t now = MonoUs();
    if (now - last > b.us || now - start > kBusyPollMaxUs) break;
    if ((now - start) - busyUs >= b.tokensUs) break;
    bool waits = false;
    b.fds.clear();
    b.polled.clear();
    for (BusyPollable* m : b.members) {
      waits = waits || m->BusyWaitsOnLoop();
      int fd = m->BusyFd();
      if (fd < 0) continue;
      b.fds.push_back(pollfd{fd, POLLIN, 0});
      b.polled.push_back(m);
    }
    if (waits || b.fds.empty()) break;
    if (poll(b.fds.data(), b.fds.size(), 0) <= 0) {
      sched_yield();
      continue;
    }
    const uint64_t leaves = b.leaves;
    for (size_t i = 0; i < b.polled.size(); i++) {
      if (!(b.fds[i].revents & (POLLIN | POLLERR))) continue;
      BusyPollable* m = b.polled[i];
      // An earlier callback in this pass may have closed it (it then left the members): look it
      // up only when someone left, so a pass stays linear in the members.
      if (b.leaves != leaves) {
        bool member = false;
        for (BusyPollable* x : b.members) member = member || x == m;
        if (!member) continue;
      }
      if (m->BusyFd() < 0) continue;
      const int64_t before = MonoUs();
      int n = m->BusyReceive();
      if (n > 0) {
        last = MonoUs();
        busyUs += last - before;
        b.frames += n;
        b.windowFrames += n;
        read += n;
      }
    }
  }
  const int64_t idle = (MonoUs() - start) - busyUs;
  b.tokensUs -= idle;
  b.idleUs += static_cast<double>(idle);
  b.spinning = false;
}

// setBusyPoll(us?, budgetPercent?): sets the busy-poll time (0: off; clamped to kBusyPollMaxUs)
// and the share of one core its idle spinning may use (1-100), each when given; returns
// [us, budget percent, spins started, frames read while spinning, idle µs spent, spins skipped
//  (budget spent), spins not started (a load), the rate bound, frames/s over the last measured
//  window, the batch bound].
namespace {

Napi::Value SetBusyPoll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Instance> inst = Instance::Of(env);
  BusyPoll& b = inst->busy;
  if (info.Length() > 0 && info[0].IsNumber()) {
    int64_t us = info[0].As<Napi::Number>().Int64Value();
    b.us = us < 0 ? 0 : (us > kBusyPollMaxUs ? kBusyPollMaxUs : us);
  }
  if (info.Length() > 1 && info[1].IsNumber()) {
    int64_t pct = info[1].As<Napi::Number>().Int64Value();
    b.budgetPerMille = 10 * (pct < 1 ? 1 : (pct > 100 ? 100 : pct));
  }
  if (b.refilledAt == 0) {
    b.refilledAt = MonoUs();
    b.tokensUs = kBusyPollBurstUs;
  }
  const double v[10] = {static_cast<double>(b.us), static_cast<double>(b.budgetPerMille) / 10, b.spins,
                        b.frames, b.idleUs, b.skipped, b.loaded, kBusyPollMaxRate, b.rate,
                        static_cast<double>(kBusyPollMaxBatch)};
  Napi::Array a = Napi::Array::New(env, 10);
  for (uint32_t i = 0; i < 10; i++) a.Set(i, Napi::Number::New(env, v[i]));
  return a;
}

}  // namespace

void InitBusyPoll(Napi::Env env, Napi::Object exports) {
  exports.Set("setBusyPoll", Napi::Function::New<SetBusyPoll>(env, "setBusyPoll"));
}

}  // namespace lanparty
