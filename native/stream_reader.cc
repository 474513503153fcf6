// StreamReader: reads a stream port's connection into one JS-owned slab (see the class comment).
#include "init.h"
#include "polled_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

namespace lanparty {
namespace {


// StreamReader: reads one connected stream socket (QEMU's tcp or unix stream netdev) for
// src/transports/stream, so that reading a stream port costs what reading a datagram port costs:
// no Buffer per read, no trip through Node's stream machinery, and busy polling reads it in its
// spin like any other BusyPollable. Node's net.Socket keeps the
// connection (connect, accept, writes, 'drain', close); it never reads it (JS opens it paused).
//   new StreamReader(fd, slab): reads into the JS-owned slab on a dup of fd, so Node closing its
//     own fd does not close ours, and the other way round.
//   start(callback): callback(n) with n > 0 bytes at slab[0, n), every read; it returns how many
//     frames they completed (busy polling's count). callback(0) at end of stream and
//     callback(-errno) on an error, once: reading has stopped then.
//   pause() / resume(): stop and start reading (flow control); close(): stop and close the dup.
//   useSlab(buffer): read into this buffer from the next read on (the callback may call it: JS
//     handed a view of the old slab to a socket that keeps it, a write that did not complete).
// The slab is rewritten by the next read, which never happens while the callback runs: JS frames
// the bytes synchronously (StreamFramer copies only a frame that continues into the next read).
class StreamReader : public PolledFd<StreamReader> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "StreamReader", {
      InstanceMethod<&StreamReader::Start>("start"),
      InstanceMethod<&StreamReader::Pause>("pause"),
      InstanceMethod<&StreamReader::Resume>("resume"),
      InstanceMethod<&StreamReader::Close>("close"),
      InstanceMethod<&StreamReader::UseSlab>("useSlab"),
    });
    exports.Set("StreamReader", ctor);
  }

  explicit StreamReader(const Napi::CallbackInfo& info) : PolledFd<StreamReader>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsBuffer()) {
      Napi::TypeError::New(env, "StreamReader: bad constructor arguments (use src/io)").ThrowAsJavaScriptException();
      return;
    }
    const int fd = info[0].As<Napi::Number>().Int32Value();
    Napi::Buffer<uint8_t> slab = info[1].As<Napi::Buffer<uint8_t>>();
    if (fd < 0 || slab.Length() < 4) {
      Napi::RangeError::New(env, "StreamReader: needs an fd and a slab of at least 4 bytes").ThrowAsJavaScriptException();
      return;
    }
    fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (fd_ < 0) {
      ErrnoError(env, errno, "dup", "stream socket").ThrowAsJavaScriptException();
      return;
    }
    const int flags = fcntl(fd_, F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
    base_ = slab.Data();
    bytes_ = slab.Length();
    memory_ = Napi::Persistent(info[1].As<Napi::Object>());
    asyncContext_ = new Napi::AsyncContext(env, "lanparty:stream-reader");
  }

  int OnReadable(int status) {
    if (status < 0) {
      End(status);
      return 0;
    }
    return Receive();
  }
  int BusyReceive() override { return Receive(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    // The net.Socket beside us keeps the loop alive while the connection is open.
    StartPolling(info, "StreamReader", false);
    return info.Env().Undefined();
  }
  Napi::Value Pause(const Napi::CallbackInfo& info) {
    SetPaused(true);
    return info.Env().Undefined();
  }
  Napi::Value Resume(const Napi::CallbackInfo& info) {
    SetPaused(false);
    return info.Env().Undefined();
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseNow();
    return info.Env().Undefined();
  }
  Napi::Value UseSlab(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsBuffer() || info[0].As<Napi::Buffer<uint8_t>>().Length() < 4) {
      Napi::TypeError::New(env, "StreamReader.useSlab: needs a buffer of at least 4 bytes").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> slab = info[0].As<Napi::Buffer<uint8_t>>();
    base_ = slab.Data();
    bytes_ = slab.Length();
    memory_ = Napi::Persistent(info[0].As<Napi::Object>());
    return env.Undefined();
  }

  // End of stream (0) or an error (-errno): stop reading, tell JS once.
  void End(int code) {
    StopPoll();
    if (callback_.IsEmpty()) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Call(env, code);
    if (!callback_.IsEmpty()) callback_.Reset();
  }

  // Reads until the socket is empty (a read shorter than the slab), or kMaxBatchesPerWakeup
  // reads (fairness with the other sockets; level triggering brings us back).
  int Receive() {
    int frames = 0;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (int round = 0; round < kMaxBatchesPerWakeup && Reading(); round++) {
      ssize_t r;
      do {
        r = ::read(fd_, base_, bytes_);
      } while (r < 0 && errno == EINTR);
      if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) End(-errno);
        return frames;
      }
      if (r == 0) {
        End(0);
        return frames;
      }
      frames += Call(env, static_cast<double>(r));
      if (static_cast<size_t>(r) < bytes_) return frames;
    }
    return frames;
  }

  Napi::ObjectReference memory_;
  uint8_t* base_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace

void InitStreamReader(Napi::Env env, Napi::Object exports) { StreamReader::Init(env, exports); }

}  // namespace lanparty
