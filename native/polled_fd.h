// PolledFd: what TapDevice and StreamReader share (one fd, read on a libuv poll and by busy polling).
#pragma once

#include "busy_poll.h"
#include "common.h"
#include "instance.h"

#include <unistd.h>

#include <string>

namespace lanparty {

// What TapDevice and StreamReader share: one fd of theirs, read when a uv_poll_t on Node's loop
// says it is readable (T::OnReadable) and by busy polling (T::BusyReceive), delivering to a JS
// callback; closed once, before or after the fd failed. BatchSocket has its own: it also polls
// for writing and for its backlogs' doorbells.
template <typename T>
class PolledFd : public Napi::ObjectWrap<T>, public BusyPollable {
 public:
  explicit PolledFd(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T>(info), inst_(Instance::Of(info.Env())) {}
  ~PolledFd() override {
    if (fd_ >= 0) ::close(fd_);
    delete asyncContext_;
  }
  int BusyFd() const override { return fd_ >= 0 && !closed_ && poll_ && !paused_ ? fd_ : -1; }

 protected:
  // start(callback): polls fd_ for reading from now on. `keepsLoopAlive` false: the poll does not
  // hold the process open (something beside it does). Throws (returns false) on a second start.
  bool StartPolling(const Napi::CallbackInfo& info, const char* cls, bool keepsLoopAlive) {
    Napi::Env env = info.Env();
    if (fd_ < 0 || closed_ || poll_ || !info[0].IsFunction()) {
      Napi::Error::New(env, std::string(cls) + ": start() needs an open fd, a callback, and may run once").ThrowAsJavaScriptException();
      return false;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
      Napi::Error::New(env, std::string(cls) + ": no libuv loop").ThrowAsJavaScriptException();
      return false;
    }
    poll_ = new uv_poll_t;
    int r = uv_poll_init(loop, poll_, fd_);
    if (r == 0) {
      poll_->data = this;
      r = uv_poll_start(poll_, UV_READABLE, OnPoll);
      if (r != 0) uv_close(reinterpret_cast<uv_handle_t*>(poll_), FreePoll);
    } else {
      delete poll_;
    }
    if (r != 0) {
      poll_ = nullptr;
      ErrnoError(env, -r, "uv_poll_start", cls).ThrowAsJavaScriptException();
      return false;
    }
    if (!keepsLoopAlive) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    this->Ref();
    referenced_ = true;
    BusyJoin(inst_->busy, this);
    return true;
  }

  // Stops reading for good (the fd stays open until CloseNow).
  void StopPoll() {
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), FreePoll);
      poll_ = nullptr;
    }
  }

  // Stops and starts reading for a while (flow control).
  void SetPaused(bool paused) {
    if (poll_ && !closed_ && paused != paused_) {
      if (paused) uv_poll_stop(poll_);
      else uv_poll_start(poll_, UV_READABLE, OnPoll);
    }
    paused_ = paused;
  }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    BusyLeave(inst_->busy, this);
    StopPoll();  // Before closing the fd: libuv must not watch a closed fd.
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (!callback_.IsEmpty()) callback_.Reset();
    if (referenced_) {
      referenced_ = false;
      this->Unref();
    }
  }

  // Calls JS with one number (an exception there is Node's uncaught exception); returns what JS
  // returned, as a number (0 when it was not one).
  int Call(Napi::Env env, double arg) {
    napi_value argv[1] = {Napi::Number::New(env, arg)};
    Napi::Value r = callback_.MakeCallback(this->Value(), 1, argv, *asyncContext_);
    if (env.IsExceptionPending()) {
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env, e.Value());
      return 0;
    }
    return !r.IsEmpty() && r.IsNumber() ? r.template As<Napi::Number>().Int32Value() : 0;
  }

  // True while reading may go on: open, polled, not paused (JS may close or pause us in a callback).
  bool Reading() const { return fd_ >= 0 && !closed_ && poll_ && !paused_; }

  int fd_ = -1;
  bool closed_ = false;
  bool paused_ = false;
  bool referenced_ = false;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::AsyncContext* asyncContext_ = nullptr;
  std::shared_ptr<Instance> inst_;  // this Node instance's busy poll

 private:
  static void FreePoll(uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    T* self = static_cast<T*>(static_cast<PolledFd*>(handle->data));
    if (self->fd_ < 0 || self->closed_) return;
    const int n = self->OnReadable(status);
    if (n > 0) BusySpin(self->inst_->busy, n);
  }
};

}  // namespace lanparty
