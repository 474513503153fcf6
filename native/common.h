// Declarations every part of lanparty_native shares: the constants of the receive loop, the
// shared counters' indexes (src/io/dgram-native.ts reads them by the same numbers) and Node-shaped errno errors.
// The addon as a whole is described in docs/data-path.md.
#pragma once

#if !defined(__linux__)
#error "lanparty_native needs Linux (recvmmsg/sendmmsg); src/io falls back to node:dgram elsewhere"
#endif

#include <napi.h>
#include <uv.h>

#include <cstdint>
#include <string>

namespace lanparty {

// Most recvmmsg batches handled per wakeup before yielding to the rest of the event loop.
constexpr int kMaxBatchesPerWakeup = 8;

// Largest batch accepted for either direction (the kernel's UIO_MAXIOV).
constexpr int kMaxBatch = 1024;

// Slots of the shared counters Float64Array; src/io/dgram-native.ts reads them by the same indexes.
enum CounterIndex {
  kSendErrors = 0,   // every datagram not sent, EAGAIN drops included
  kRecvErrors = 1,
  kTruncated = 2,
  kSendDropped = 3,  // the EAGAIN/ENOBUFS subset of kSendErrors (a full queue, not a fault)
  kUnaddressable = 4,  // received from an unbound unix socket, or with the peer table full
  kSendQueued = 5,     // gauge: datagrams waiting in unix peer backlogs right now
  kGsoMessages = 6,    // UDP GSO messages sent (each carried 2..kGsoMaxSegments datagrams)
  kGsoDatagrams = 7,   // datagrams those messages carried
  kFlowPauses = 8,     // times one of this socket's backlogs stopped a unix socket reading (stage 6)
  kFlowTimeouts = 9,   // backlogs that held one kFlowPauseMaxMs without draining (stuck)
  kPeersLive = 10,     // gauge: peer ids in use (PeerTable), evicted ones not yet released included
  kPeersEvicted = 11,  // ids evicted because the table was full (least recently heard first)
  kNotAccepted = 12,   // udp4: from a source outside the accept list (acceptSources), dropped
  kCounterCount = 13,
};

enum class Kind { kInet, kUnix };

// Builds an error like Node's UVException: "bind EADDRINUSE 127.0.0.1:5555".
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& where);

}  // namespace lanparty
