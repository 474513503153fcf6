// The interface ioctls (configureInterface, interfaceState) for TAP ports.
#include "common.h"
#include "init.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace lanparty {
namespace {


// configureInterface(name, address, prefixLength, mtu, up): the classic interface ioctls on an
// AF_INET socket (what ifconfig does). address '' = leave alone; mtu 0 = leave alone. Needs
// CAP_NET_ADMIN. Chosen over spawning `ip`: synchronous, no dependency on iproute2 at run time,
// and the errno comes back exact. IPv4 only, one address (SIOCSIFADDR replaces the primary one).
Napi::Value ConfigureInterface(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  std::string address = info[1].As<Napi::String>().Utf8Value();
  int prefix = info[2].ToNumber().Int32Value();
  int mtu = info[3].ToNumber().Int32Value();
  bool up = info[4].ToBoolean().Value();
  if (name.empty() || name.size() >= IFNAMSIZ || prefix < 0 || prefix > 32) {
    ErrnoError(env, EINVAL, "configure", name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    ErrnoError(env, errno, "socket", name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ifreq ifr;
  auto reset = [&]() {
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, name.data(), name.size());
  };
  auto inet = [&](uint32_t hostOrder) {
    sockaddr_in* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(hostOrder);
  };
  const char* failed = nullptr;
  if (mtu > 0) {
    reset();
    ifr.ifr_mtu = mtu;
    if (ioctl(s, SIOCSIFMTU, &ifr) != 0) failed = "SIOCSIFMTU";
  }
  if (!failed && !address.empty()) {
    in_addr a;
    if (inet_pton(AF_INET, address.c_str(), &a) != 1) {
      ::close(s);
      ErrnoError(env, EINVAL, "inet_pton", address).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    reset();
    inet(ntohl(a.s_addr));
    if (ioctl(s, SIOCSIFADDR, &ifr) != 0) {
      failed = "SIOCSIFADDR";
    } else {
      reset();
      inet(prefix == 0 ? 0 : 0xffffffffu << (32 - prefix));
      if (ioctl(s, SIOCSIFNETMASK, &ifr) != 0) failed = "SIOCSIFNETMASK";
    }
  }
  if (!failed && up) {
    reset();
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
      failed = "SIOCGIFFLAGS";
    } else if (!(ifr.ifr_flags & IFF_UP)) {
      ifr.ifr_flags |= IFF_UP;
      if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) failed = "SIOCSIFFLAGS";
    }
  }
  int err = errno;
  ::close(s);
  if (failed) ErrnoError(env, err, failed, name).ThrowAsJavaScriptException();
  return env.Undefined();
}

// interfaceState(name) -> {ifindex, flags} or null when there is no such interface in this
// process's network namespace. An ioctl rather than /sys/class/net, whose view belongs to the
// namespace that mounted sysfs (under `unshare --net` that is the parent's).
Napi::Value InterfaceState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.empty() || name.size() >= IFNAMSIZ) return env.Null();
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    ErrnoError(env, errno, "socket", name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, name.data(), name.size());
  int flagsOk = ioctl(s, SIOCGIFFLAGS, &ifr);
  int flags = ifr.ifr_flags & 0xffff;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, name.data(), name.size());
  int indexOk = ioctl(s, SIOCGIFINDEX, &ifr);
  int err = errno;
  ::close(s);
  if (flagsOk != 0 || indexOk != 0) {
    if (err == ENODEV || err == ENXIO) return env.Null();
    ErrnoError(env, err, "SIOCGIFFLAGS", name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("ifindex", Napi::Number::New(env, ifr.ifr_ifindex));
  o.Set("flags", Napi::Number::New(env, flags));
  return o;
}

}  // namespace

void InitInterface(Napi::Env env, Napi::Object exports) {
  exports.Set("interfaceState", Napi::Function::New<InterfaceState>(env, "interfaceState"));
  exports.Set("configureInterface", Napi::Function::New<ConfigureInterface>(env, "configureInterface"));
}

}  // namespace lanparty
