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

bool BusyPollDecide(BusyPoll& b, int64_t start, int delivered) {
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
    return false;
  }
  b.tokensUs += (start - b.refilledAt) * b.budgetPerMille / 1000;
  if (b.tokensUs > kBusyPollBurstUs) b.tokensUs = kBusyPollBurstUs;
  b.refilledAt = start;
  if (b.tokensUs < b.us) {  // Not enough for a whole spin: sleep, let it refill.
    b.skipped += 1;
    return false;
  }
  return true;
}

void BusyPollCharge(BusyPoll& b, int64_t idleUs) {
  b.tokensUs -= idleUs;
  b.idleUs += static_cast<double>(idleUs);
}

void BusyPollConfigure(BusyPoll& b, Napi::Value us, Napi::Value percent, int64_t nowUs) {
  if (us.IsNumber()) {
    int64_t v = us.As<Napi::Number>().Int64Value();
    b.us = v < 0 ? 0 : (v > kBusyPollMaxUs ? kBusyPollMaxUs : v);
  }
  if (percent.IsNumber()) {
    int64_t pct = percent.As<Napi::Number>().Int64Value();
    b.budgetPerMille = 10 * (pct < 1 ? 1 : (pct > 100 ? 100 : pct));
  }
  if (b.refilledAt == 0) {
    b.refilledAt = nowUs;
    b.tokensUs = kBusyPollBurstUs;
  }
}

// Called after a wakeup delivered `delivered` frames: the policy decides, then the spin polls,
// reading the clock itself (it measures how long it polled).
void BusySpin(BusyPoll& b, int delivered) {
  if (b.us <= 0 || b.spinning) return;
  const int64_t start = MonoUs();
  if (!BusyPollDecide(b, start, delivered)) return;
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
  BusyPollCharge(b, (MonoUs() - start) - busyUs);
  b.spinning = false;
}

// setBusyPoll(us?, budgetPercent?): sets the busy-poll time (0: off; clamped to kBusyPollMaxUs)
// and the share of one core its idle spinning may use (1-100), each when given; returns
// [us, budget percent, spins started, frames read while spinning, idle µs spent, spins skipped
//  (budget spent), spins not started (a load), the rate bound, frames/s over the last measured
//  window, the batch bound].
namespace {

Napi::Value StateArray(Napi::Env env, const BusyPoll& b) {
  const double v[10] = {static_cast<double>(b.us), static_cast<double>(b.budgetPerMille) / 10, b.spins,
                        b.frames, b.idleUs, b.skipped, b.loaded, kBusyPollMaxRate, b.rate,
                        static_cast<double>(kBusyPollMaxBatch)};
  Napi::Array a = Napi::Array::New(env, 10);
  for (uint32_t i = 0; i < 10; i++) a.Set(i, Napi::Number::New(env, v[i]));
  return a;
}

Napi::Value SetBusyPoll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Instance> inst = Instance::Of(env);
  BusyPoll& b = inst->busy;
  BusyPollConfigure(b, info[0], info[1], MonoUs());
  return StateArray(env, b);
}

// BusyPollPolicy: the busy-poll policy alone, on a clock the caller steps (tests). It is a
// BusyPoll of its own that no socket joins, so nothing ever spins; decide() says whether a
// wakeup at nowUs that delivered n frames would spin, charge(idleUs) bills a spin's idle time.
//   configure(us?, budgetPercent?, nowUs) -> state   decide(nowUs, n) -> bool
//   charge(idleUs)                                     state() -> the array setBusyPoll returns
class BusyPollPolicy : public Napi::ObjectWrap<BusyPollPolicy> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("BusyPollPolicy", DefineClass(env, "BusyPollPolicy", {
      InstanceMethod<&BusyPollPolicy::Configure>("configure"),
      InstanceMethod<&BusyPollPolicy::Decide>("decide"),
      InstanceMethod<&BusyPollPolicy::Charge>("charge"),
      InstanceMethod<&BusyPollPolicy::State>("state"),
    }));
  }
  explicit BusyPollPolicy(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BusyPollPolicy>(info) {}

 private:
  Napi::Value Configure(const Napi::CallbackInfo& info) {
    BusyPollConfigure(b_, info[0], info[1], info[2].ToNumber().Int64Value());
    return StateArray(info.Env(), b_);
  }
  Napi::Value Decide(const Napi::CallbackInfo& info) {
    const bool spin = b_.us > 0 && BusyPollDecide(b_, info[0].ToNumber().Int64Value(), info[1].ToNumber().Int32Value());
    if (spin) b_.spins += 1;
    return Napi::Boolean::New(info.Env(), spin);
  }
  Napi::Value Charge(const Napi::CallbackInfo& info) {
    BusyPollCharge(b_, info[0].ToNumber().Int64Value());
    return info.Env().Undefined();
  }
  Napi::Value State(const Napi::CallbackInfo& info) { return StateArray(info.Env(), b_); }

  BusyPoll b_;
};

}  // namespace

void InitBusyPoll(Napi::Env env, Napi::Object exports) {
  exports.Set("setBusyPoll", Napi::Function::New<SetBusyPoll>(env, "setBusyPoll"));
  BusyPollPolicy::Init(env, exports);
}

}  // namespace lanparty
