// lanparty_native: batched datagram I/O, TAP device I/O, stream port reads and the peer links'
// ChaCha20-Poly1305, for src/io/addon.ts, and nothing more. It moves frames between
// the kernel and memory JS allocated once, and never allocates or builds a JS value per frame.
// docs/data-path.md describes the receive and send stages, the slabs, busy polling and flow
// control. One file per part: batch_socket (recvmmsg/sendmmsg), unix_backlog (backlogs, flow
// control), peer_table, rx_slabs, busy_poll, tap_device, stream_reader, interface (ioctls), aead.
#include "init.h"
#include "instance.h"

namespace {

// The interface version src/io/addon.ts checks at load (ADDON_ABI_VERSION there): raise both together
// whenever an export, an argument, a counter index or a result code changes meaning.
constexpr int kAbiVersion = 2;

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, kAbiVersion));
  lanparty::Instance::Create(env);
  lanparty::InitBatchSocket(env, exports);
  lanparty::InitInterface(env, exports);
  lanparty::InitBusyPoll(env, exports);
  lanparty::InitTapDevice(env, exports);
  lanparty::InitStreamReader(env, exports);
  lanparty::InitAead(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(lanparty_native, InitModule)
