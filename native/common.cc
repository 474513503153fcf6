// Node-shaped errno errors for every part of the addon.
#include "common.h"

namespace lanparty {

// Builds an error like Node's UVException: "bind EADDRINUSE 127.0.0.1:5555".
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& where) {
  const char* name = uv_err_name(-err);  // libuv on Unix: UV_Exxx == -Exxx.
  std::string msg = std::string(syscall) + " " + name + " " + where;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, name));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.Set("address", Napi::String::New(env, where));
  return e;
}

}  // namespace lanparty
