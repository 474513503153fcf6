// The busy-poll spin and its setBusyPoll() control (busy_poll.h).
#include "busy_poll.h"
#include "init.h"

#include <napi.h>
#include <sched.h>
#include <time.h>

namespace lanparty {

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

// setBusyPoll(us?, budgetPercent?): sets the busy-poll time (0: off; clamped to kBusyPollMaxUs)
// and the share of one core its idle spinning may use (1-100), each when given; returns
// [us, budget percent, spins started, frames read while spinning, idle µs spent, spins skipped
//  (budget spent), spins not started (a load), the rate bound, frames/s over the last measured
//  window, the batch bound].
namespace {

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

}  // namespace

void InitBusyPoll(Napi::Env env, Napi::Object exports) {
  exports.Set("setBusyPoll", Napi::Function::New<SetBusyPoll>(env, "setBusyPoll"));
}

}  // namespace lanparty
