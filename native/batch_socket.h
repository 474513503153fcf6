// BatchSocket: a non-blocking AF_INET or AF_UNIX datagram socket that moves batches of datagrams
// between the kernel (recvmmsg/sendmmsg) and slabs JS allocated once; the receive and send stages
// are in docs/data-path.md. Its unix peer backlogs and flow control are in unix_backlog.cc.
#pragma once

#include "busy_poll.h"
#include "common.h"
#include "instance.h"
#include "peer_table.h"
#include "rx_slabs.h"
#include "unix_backlog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <memory>
#include <utility>
#include <vector>

namespace lanparty {

// UDP GSO (send stage 2): at most this many datagrams, and this many payload bytes, per message.
// Linux accepts 64 segments (UDP_MAX_SEGMENTS, 128 on newer kernels) and one IPv4 datagram's worth
// of payload (65507 bytes).
constexpr int kGsoMaxSegments = 64;
constexpr size_t kGsoMaxBytes = 65000;
static_assert(kBacklogSendBatch >= kGsoMaxSegments, "SendOneByOne reuses the backlog scratch headers");
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

class BatchSocket : public Napi::ObjectWrap<BatchSocket>, public BusyPollable {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports);
  explicit BatchSocket(const Napi::CallbackInfo& info);

  ~BatchSocket() override;

 private:
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value IgnoreSource(const Napi::CallbackInfo& info);
  Napi::Value AcceptSources(const Napi::CallbackInfo& info);

  bool Accepts(const sockaddr_storage& ss) const {
    if (ss.ss_family != AF_INET) return false;
    const sockaddr_in* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    uint32_t ip = ntohl(sin->sin_addr.s_addr);
    for (const auto& n : acceptNets_) {
      if ((ip & n.second) == n.first) return true;
    }
    uint32_t port = ntohs(sin->sin_port);
    for (const auto& e : acceptExact_) {
      if (e.first == ip && e.second == port) return true;
    }
    return false;
  }

  Napi::Value LocalAddress(const Napi::CallbackInfo& info);
  Napi::Value PeerIdInet(const Napi::CallbackInfo& info);
  Napi::Value PeerIdUnix(const Napi::CallbackInfo& info);
  Napi::Value PeerAddress(const Napi::CallbackInfo& info);
  Napi::Value ReleasePeer(const Napi::CallbackInfo& info);

  void NotePeers() {
    counters_[kPeersLive] = table_.Live() + table_.EvictedWaiting();
    counters_[kPeersEvicted] = static_cast<double>(table_.evictions);
  }

  Napi::Value EnablePeerEviction(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);

  // While a poll handle holds a raw pointer to this object (receiving, or a backlog waiting),
  // keep the JS object from being collected; released by close().
  void HoldSelf() {
    if (referenced_) return;
    Ref();
    referenced_ = true;
  }

  int UpdateMainPoll();
  Napi::Value CopyIn(const Napi::CallbackInfo& info);
  Napi::Value RxSlabId(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  int SendOneByOne(const msghdr& m);

  // ---- Unix peer backlogs (header, send stages 3-5) ----

  // The peer's backlog if it has datagrams waiting, else null.
  PeerBacklog* ActiveBacklog(int id) {
    if (kind_ != Kind::kUnix || id < 0 || id >= static_cast<int>(backlogs_.size())) return nullptr;
    PeerBacklog* b = backlogs_[id].get();
    return b && b->count > 0 ? b : nullptr;
  }

  PeerBacklog* BacklogFor(int id);
  void Backlog(PeerBacklog* b, const uint8_t* data, size_t len, int32_t src);

  // ---- Flow control (header, send stage 6) ----

  void Hold(PeerBacklog* b, int32_t src);
  void Release(PeerBacklog* b);
  int StartFlowTimer(PeerBacklog* b);
  static void OnFlowTimeout(uv_timer_t* t);
  static void CloseFlowTimer(PeerBacklog* b);

  static void FreeTimer(uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); }

  static bool PeerGone(int err) { return err == ENOENT || err == ECONNREFUSED || err == ENOTDIR; }

  int SendBacklog(PeerBacklog* b);
  int ConnectDoorbell(PeerBacklog* b);
  static bool PeerHasRoom(PeerBacklog* b);
  void Service(PeerBacklog* b, bool blocked);

  void SetWaitingOnSelf(PeerBacklog* b, bool on) {
    if (b->waitingOnSelf == on) return;
    b->waitingOnSelf = on;
    selfWaiters_ += on ? 1 : -1;
  }

  int StartDoorbellPoll(PeerBacklog* b);
  static void StopDoorbellPoll(PeerBacklog* b);
  static void CloseDoorbell(PeerBacklog* b);
  void DropBacklog(PeerBacklog* b);
  static void OnDoorbell(uv_poll_t* handle, int status, int events);
  void OnSelfWritable();
  Napi::Value Close(const Napi::CallbackInfo& info);
  void CloseNow();

  static void FreePoll(uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); }

  static void OnPoll(uv_poll_t* handle, int status, int events);

 public:
  int BusyFd() const override { return fd_ >= 0 && started_ && !closed_ && pausedBy_ == 0 ? fd_ : -1; }
  int BusyReceive() override { return Receive(); }
  bool BusyWaitsOnLoop() const override { return counters_ != nullptr && counters_[kSendQueued] > 0; }

 private:
  int Receive();
  Napi::Value AddressObject(Napi::Env env, const PeerAddr& p);

  Kind kind_ = Kind::kInet;
  int fd_ = -1;
  // The accept list (AcceptSources); off: every source is taken.
  bool acceptOn_ = false;
  std::vector<std::pair<uint32_t, uint32_t>> acceptNets_;   // (network, mask), host order
  std::vector<std::pair<uint32_t, uint32_t>> acceptExact_;  // (address, port), host order
  bool closed_ = false;
  bool started_ = false;
  bool referenced_ = false;
  uv_loop_t* loop_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::AsyncContext* asyncContext_ = nullptr;
  std::vector<Napi::ObjectReference> memory_;

  int batch_ = 0;
  int slotBytes_ = 0;
  uint8_t* rxBase_ = nullptr;
  int32_t* lengths_ = nullptr;
  int32_t* peers_ = nullptr;
  std::vector<mmsghdr> rxHdrs_;
  std::vector<iovec> rxIov_;
  std::vector<sockaddr_storage> rxNames_;

  int txCap_ = 0;
  uint8_t* txBase_ = nullptr;
  size_t txBytes_ = 0;
  int32_t* txOffs_ = nullptr;
  int32_t* txLens_ = nullptr;
  int32_t* txPeers_ = nullptr;
  int32_t* txSrcs_ = nullptr;
  int32_t rxSlabId_ = 0;
  std::vector<mmsghdr> txHdrs_;
  std::vector<iovec> txIov_;
  std::vector<int> txIds_;  // peer id of txHdrs_[i]
  std::vector<int> txSegs_;  // datagrams in txHdrs_[i] (> 1: a GSO message)
  std::vector<size_t> txMsgBytes_;  // payload bytes in txHdrs_[i]
  std::vector<int32_t> txMsgSrcs_;  // txSrcs of txHdrs_[i]'s datagram (unix: one per message)
  std::vector<uint8_t> txCtl_;  // one UDP_SEGMENT cmsg per message
  // UDP GSO: on for udp4 sockets that checksum (SO_NO_CHECK forbids it) when the kernel has it;
  // segments longer than gsoMaxSeg_ are never coalesced (lowered when a path refuses one).
  bool gso_ = false;
  size_t gsoMaxSeg_ = 65535;

  // Unix peer backlogs, indexed by peer id (created on a peer's first EAGAIN, kept until close).
  std::vector<std::unique_ptr<PeerBacklog>> backlogs_;
  int selfWaiters_ = 0;  // backlogs waiting for the main socket's own UV_WRITABLE
  int pausedBy_ = 0;     // backlogs (of any socket) that keep this one from reading (stage 6)
  bool flowControl_ = false;  // unix, opened with flowControl (off unless asked for): may be paused
  mmsghdr blHdrs_[kBacklogSendBatch];
  iovec blIov_[kBacklogSendBatch];

  double* counters_ = nullptr;
  PeerTable table_;
  std::shared_ptr<Instance> inst_;  // this Node instance's busy poll and slab registry
};

}  // namespace lanparty
