// TapDevice: TAP devices (src/transports/tap via src/io openTapDevice / configureInterface).
//
// One fd from /dev/net/tun, attached with TUNSETIFF (IFF_TAP | IFF_NO_PI: every read() is one
// whole Ethernet frame, every write() sends one). There is no recvmmsg for a character device,
// so a wakeup costs one read() per frame, but still one JS call per batch:
//
// Receive stages (one libuv wakeup):
//   1. uv_poll_t reports the fd readable (level-triggered), or an error (device deleted:
//      tun_chr_poll reports EPOLLERR once the tun is detached).
//   2. read() into slot i of the JS-owned rx slab, until EAGAIN or batchSize frames.
//      A frame that fills its slot completely may have been cut short: counted, dropped.
//   3. The JS callback gets the count (MakeCallback, so the microtask queue drains).
//   4. Repeat from 2 up to kMaxBatchesPerWakeup batches (fairness), as BatchSocket does.
//   A read error other than EAGAIN/EINTR (EBADFD once the device is gone) stops the poll and
//   calls back once with -errno; the owner closes this object and reopens the device later.
//
// Send: write(buf+off, len) straight from the caller's buffer (the kernel copies into its skb;
// we copy nothing). The fd is O_NONBLOCK, so write() never blocks; the result is classified
// (TxResult) so JS counts the drop reason without building an error object per frame.
#include "init.h"
#include "polled_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace lanparty {
namespace {

enum TxResult {
  kTxSent = 0,
  kTxFull = 1,   // EAGAIN/ENOBUFS/ENOMEM: the kernel would have to wait; dropped
  kTxDown = 2,   // EIO: the interface is administratively down
  kTxGone = 3,   // EBADFD/ENODEV/ENXIO: the device was deleted under us
  kTxError = 4,  // anything else (EINVAL for a runt, EFAULT, ...)
};

enum TapCounterIndex {
  kTapRecvErrors = 0,
  kTapTruncated = 1,
  kTapCounterCount = 2,
};

class TapDevice : public PolledFd<TapDevice> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "TapDevice", {
      InstanceMethod<&TapDevice::Open>("open"),
      InstanceMethod<&TapDevice::Start>("start"),
      InstanceMethod<&TapDevice::Write>("write"),
      InstanceMethod<&TapDevice::Close>("close"),
    });
    exports.Set("TapDevice", ctor);
  }

  // new TapDevice(rxSlab, slotBytes, lengths, counters): JS-owned memory, kept for our life.
  explicit TapDevice(const Napi::CallbackInfo& info) : PolledFd<TapDevice>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 4 || !info[0].IsBuffer() || !info[1].IsNumber() || !info[2].IsTypedArray() ||
        !info[3].IsTypedArray()) {
      Napi::TypeError::New(env, "TapDevice: bad constructor arguments (use src/io)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Buffer<uint8_t> rx = info[0].As<Napi::Buffer<uint8_t>>();
    slotBytes_ = info[1].As<Napi::Number>().Int32Value();
    Napi::Int32Array lengths = info[2].As<Napi::Int32Array>();
    Napi::Float64Array counters = info[3].As<Napi::Float64Array>();
    batch_ = static_cast<int>(lengths.ElementLength());
    if (batch_ < 1 || batch_ > kMaxBatch || slotBytes_ < 1 ||
        rx.Length() < static_cast<size_t>(batch_) * static_cast<size_t>(slotBytes_) ||
        counters.ElementLength() < kTapCounterCount) {
      Napi::RangeError::New(env, "TapDevice: inconsistent slab or array sizes (use src/io)").ThrowAsJavaScriptException();
      return;
    }
    rxBase_ = rx.Data();
    lengths_ = lengths.Data();
    counters_ = counters.Data();
    for (size_t i = 0; i < 4; i++) {
      if (i != 1) memory_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    }
    asyncContext_ = new Napi::AsyncContext(env, "lanparty:tap-device");
  }

 private:
  // open(name, create) -> {name, ifindex}. Without `create`, an absent device is ENODEV (TUNSETIFF
  // would otherwise create it, or fail with EPERM for an unprivileged user, which misleads).
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ >= 0 || closed_) {
      Napi::Error::New(env, "TapDevice: open() called twice").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string name = info[0].As<Napi::String>().Utf8Value();
    bool create = info[1].ToBoolean().Value();
    if (name.empty() || name.size() >= IFNAMSIZ) {
      ErrnoError(env, EINVAL, "TUNSETIFF", name).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!create && if_nametoindex(name.c_str()) == 0) {
      ErrnoError(env, ENODEV, "TUNSETIFF", name).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      ErrnoError(env, errno, "open", "/dev/net/tun").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    memcpy(ifr.ifr_name, name.data(), name.size());
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
      int err = errno;
      ::close(fd);
      ErrnoError(env, err, "TUNSETIFF", name).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    fd_ = fd;
    std::string actual(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", actual);
    o.Set("ifindex", Napi::Number::New(env, if_nametoindex(actual.c_str())));
    return o;
  }

  // start(callback): callback(count) per batch; callback(-errno) once when the device fails.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    StartPolling(info, "TapDevice", true);
    return info.Env().Undefined();
  }

  // write(buf, off, len) -> TxResult. One frame, straight from the caller's memory.
  Napi::Value Write(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    void* data = nullptr;
    size_t size = 0;
    uint32_t off = 0, len = 0;
    int result = kTxError;
    if (fd_ < 0) {
      result = kTxGone;
    } else if (napi_get_buffer_info(env, info[0], &data, &size) == napi_ok &&
               napi_get_value_uint32(env, info[1], &off) == napi_ok &&
               napi_get_value_uint32(env, info[2], &len) == napi_ok && static_cast<size_t>(off) + len <= size) {
      ssize_t r;
      do {
        r = ::write(fd_, static_cast<uint8_t*>(data) + off, len);
      } while (r < 0 && errno == EINTR);
      if (r >= 0) {
        result = kTxSent;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == ENOMEM) {
        result = kTxFull;
      } else if (errno == EIO) {
        result = kTxDown;
      } else if (errno == EBADFD || errno == ENODEV || errno == ENXIO) {
        result = kTxGone;
      }
    }
    napi_value v;
    napi_create_int32(env, result, &v);
    return Napi::Value(env, v);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseNow();
    return info.Env().Undefined();
  }

 public:
  int OnReadable(int status) {
    if (status < 0) {
      Fail(-status);
      return 0;
    }
    // EPOLLERR arrives with UV_READABLE set (libuv adds it), so read() reports the errno.
    return Receive();
  }
  int BusyReceive() override { return Receive(); }

 private:

  // Stops reading and tells JS once; the fd stays open until close() (writes then report kTxGone
  // or kTxDown by themselves).
  void Fail(int err) {
    counters_[kTapRecvErrors] += 1;
    StopPoll();
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Call(env, -err);
  }

  int Receive() {
    int delivered = 0;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (int round = 0; round < kMaxBatchesPerWakeup && Reading(); round++) {
      int out = 0;
      int err = 0;
      while (out < batch_) {
        uint8_t* slot = rxBase_ + static_cast<size_t>(out) * slotBytes_;
        ssize_t r = ::read(fd_, slot, static_cast<size_t>(slotBytes_));
        if (r < 0) {
          if (errno == EINTR) continue;
          if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
          break;
        }
        if (r >= slotBytes_) {
          counters_[kTapTruncated] += 1;  // The slot is one byte larger than the largest frame.
          continue;
        }
        lengths_[out++] = static_cast<int32_t>(r);
      }
      if (out > 0) {
        delivered += out;
        Call(env, out);
        if (!Reading()) return delivered;  // JS closed us from the callback.
      }
      if (err != 0) {
        Fail(err);
        return delivered;
      }
      if (out < batch_) return delivered;
    }
    return delivered;
  }

  std::vector<Napi::ObjectReference> memory_;
  int batch_ = 0;
  int slotBytes_ = 0;
  uint8_t* rxBase_ = nullptr;
  int32_t* lengths_ = nullptr;
  double* counters_ = nullptr;
};

}  // namespace

void InitTapDevice(Napi::Env env, Napi::Object exports) { TapDevice::Init(env, exports); }

}  // namespace lanparty
