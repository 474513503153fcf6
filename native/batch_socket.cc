// BatchSocket: setup, peer ids, flush (send stages 1-2) and receive (stages 2-5); see
// docs/data-path.md.
#include "batch_socket.h"
#include "init.h"

#include <linux/filter.h>
#include <netinet/udp.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

namespace lanparty {

Napi::Object BatchSocket::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "BatchSocket", {
    InstanceMethod<&BatchSocket::Open>("open"),
    InstanceMethod<&BatchSocket::LocalAddress>("localAddress"),
    InstanceMethod<&BatchSocket::IgnoreSource>("ignoreSource"),
    InstanceMethod<&BatchSocket::AcceptSources>("acceptSources"),
    InstanceMethod<&BatchSocket::PeerIdInet>("peerIdInet"),
    InstanceMethod<&BatchSocket::PeerIdUnix>("peerIdUnix"),
    InstanceMethod<&BatchSocket::PeerAddress>("peerAddress"),
    InstanceMethod<&BatchSocket::ReleasePeer>("releasePeer"),
    InstanceMethod<&BatchSocket::EnablePeerEviction>("enablePeerEviction"),
    InstanceMethod<&BatchSocket::Start>("start"),
    InstanceMethod<&BatchSocket::CopyIn>("copyIn"),
    InstanceMethod<&BatchSocket::RxSlabId>("rxSlabId"),
    InstanceMethod<&BatchSocket::Flush>("flush"),
    InstanceMethod<&BatchSocket::Close>("close"),
  });
  exports.Set("BatchSocket", ctor);
  exports.Set("maxBatch", Napi::Number::New(env, kMaxBatch));
  exports.Set("backlogDatagrams", Napi::Number::New(env, kBacklogDatagrams));
  exports.Set("backlogBytes", Napi::Number::New(env, static_cast<double>(kBacklogBytes)));
  exports.Set("maxPeers", Napi::Number::New(env, kMaxPeers));
  exports.Set("evictedMax", Napi::Number::New(env, kEvictedMax));
  return exports;
}

// new BatchSocket(rxSlab, slotBytes, lengths, peers, txSlab, txOffs, txLens, txPeers, txSrcs, counters)
// All memory is JS-owned and referenced here for the socket's life; the batch size is
// lengths.length and the tx queue capacity is txOffs.length. txSrcs[i] is 0 (txOffs[i] is in the
// tx slab) or the rxSlabId() of the slab it is in.
BatchSocket::BatchSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BatchSocket>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 10 || !info[0].IsBuffer() || !info[1].IsNumber() || !info[2].IsTypedArray() ||
      !info[3].IsTypedArray() || !info[4].IsBuffer() || !info[5].IsTypedArray() ||
      !info[6].IsTypedArray() || !info[7].IsTypedArray() || !info[8].IsTypedArray() || !info[9].IsTypedArray()) {
    Napi::TypeError::New(env, "BatchSocket: bad constructor arguments (use src/io)").ThrowAsJavaScriptException();
    return;
  }
  Napi::Buffer<uint8_t> rx = info[0].As<Napi::Buffer<uint8_t>>();
  slotBytes_ = info[1].As<Napi::Number>().Int32Value();
  Napi::Int32Array lengths = info[2].As<Napi::Int32Array>();
  Napi::Int32Array peers = info[3].As<Napi::Int32Array>();
  Napi::Buffer<uint8_t> tx = info[4].As<Napi::Buffer<uint8_t>>();
  Napi::Int32Array txOffs = info[5].As<Napi::Int32Array>();
  Napi::Int32Array txLens = info[6].As<Napi::Int32Array>();
  Napi::Int32Array txPeers = info[7].As<Napi::Int32Array>();
  Napi::Int32Array txSrcs = info[8].As<Napi::Int32Array>();
  Napi::Float64Array counters = info[9].As<Napi::Float64Array>();
  batch_ = static_cast<int>(lengths.ElementLength());
  txCap_ = static_cast<int>(txOffs.ElementLength());
  if (batch_ < 1 || batch_ > kMaxBatch || slotBytes_ < 1 || peers.ElementLength() != lengths.ElementLength() ||
      rx.Length() < static_cast<size_t>(batch_) * static_cast<size_t>(slotBytes_) || txCap_ < 1 || txCap_ > kMaxBatch ||
      txLens.ElementLength() != txOffs.ElementLength() || txPeers.ElementLength() != txOffs.ElementLength() ||
      txSrcs.ElementLength() != txOffs.ElementLength() || counters.ElementLength() < kCounterCount) {
    Napi::RangeError::New(env, "BatchSocket: inconsistent slab or array sizes (use src/io)").ThrowAsJavaScriptException();
    return;
  }
  rxBase_ = rx.Data();
  lengths_ = lengths.Data();
  peers_ = peers.Data();
  txBase_ = tx.Data();
  txBytes_ = tx.Length();
  txOffs_ = txOffs.Data();
  txLens_ = txLens.Data();
  txPeers_ = txPeers.Data();
  txSrcs_ = txSrcs.Data();
  counters_ = counters.Data();
  // Keep the JS memory alive as long as this object holds raw pointers into it.
  for (size_t i = 0; i < 10; i++) {
    if (i != 1) memory_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
  }
  inst_ = Instance::Of(env);
  rxSlabId_ = inst_->slabs.Register(rxBase_, rx.Length(), this);

  rxHdrs_.resize(batch_);
  rxIov_.resize(batch_);
  rxNames_.resize(batch_);
  for (int i = 0; i < batch_; i++) {
    rxIov_[i].iov_base = rxBase_ + static_cast<size_t>(i) * slotBytes_;
    rxIov_[i].iov_len = slotBytes_;
    msghdr& h = rxHdrs_[i].msg_hdr;
    memset(&h, 0, sizeof(h));
    h.msg_name = &rxNames_[i];
    h.msg_iov = &rxIov_[i];
    h.msg_iovlen = 1;
  }
  txHdrs_.resize(txCap_);
  txIov_.resize(txCap_);
  for (int i = 0; i < txCap_; i++) {
    msghdr& h = txHdrs_[i].msg_hdr;
    memset(&h, 0, sizeof(h));
    h.msg_iov = &txIov_[i];
    h.msg_iovlen = 1;
  }
  txIds_.resize(txCap_);
  txSegs_.resize(txCap_);
  txMsgBytes_.resize(txCap_);
  txMsgSrcs_.resize(txCap_);
  txCtl_.assign(static_cast<size_t>(txCap_) * CMSG_SPACE(sizeof(uint16_t)), 0);
  for (int i = 0; i < kBacklogSendBatch; i++) {
    msghdr& h = blHdrs_[i].msg_hdr;
    memset(&h, 0, sizeof(h));
    h.msg_iov = &blIov_[i];
    h.msg_iovlen = 1;
  }
  if (napi_get_uv_event_loop(env, &loop_) != napi_ok) loop_ = nullptr;
  asyncContext_ = new Napi::AsyncContext(env, "lanparty:batch-socket");
}

BatchSocket::~BatchSocket() {
  // Reached only when the socket was never started or already closed (start() holds a strong
  // reference until close()), so there is no active poll handle here.
  if (fd_ >= 0) ::close(fd_);
  if (inst_) inst_->slabs.Unregister(rxSlabId_);
  delete asyncContext_;
}

// open({kind, host, port, path, reuseAddr, rcvbufBytes, sndbufBytes,
//       mcastGroup, mcastInterface, mcastTtl, mcastLoop, mcastJoin}): socket, options, bind.
Napi::Value BatchSocket::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ >= 0 || closed_) {
    Napi::Error::New(env, "BatchSocket: open() called twice").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  std::string kind = o.Get("kind").As<Napi::String>().Utf8Value();
  sockaddr_storage bindAddr;
  memset(&bindAddr, 0, sizeof(bindAddr));
  socklen_t bindLen = 0;
  std::string where;
  if (kind == "udp4") {
    kind_ = Kind::kInet;
    std::string host = o.Get("host").As<Napi::String>().Utf8Value();
    int port = o.Get("port").As<Napi::Number>().Int32Value();
    sockaddr_in* sin = reinterpret_cast<sockaddr_in*>(&bindAddr);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    where = host + ":" + std::to_string(port);
    if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) != 1) {
      ErrnoError(env, EINVAL, "inet_pton", where).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    bindLen = sizeof(sockaddr_in);
  } else if (kind == "unix") {
    kind_ = Kind::kUnix;
    std::string path = o.Get("path").As<Napi::String>().Utf8Value();
    where = path;
    sockaddr_un* sun = reinterpret_cast<sockaddr_un*>(&bindAddr);
    sun->sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(sun->sun_path)) {
      ErrnoError(env, ENAMETOOLONG, "bind", where).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    memcpy(sun->sun_path, path.data(), path.size());
    bindLen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  } else {
    Napi::TypeError::New(env, "BatchSocket: kind must be udp4 or unix").ThrowAsJavaScriptException();
    return env.Undefined();
  }

  int fd = ::socket(kind_ == Kind::kInet ? AF_INET : AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ErrnoError(env, errno, "socket", where).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const char* failed = nullptr;
  std::string failedWhere = where;
  int one = 1;
  if (o.Get("reuseAddr").ToBoolean().Value() &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    failed = "setsockopt(SO_REUSEADDR)";
  }
  int rcvbuf = o.Get("rcvbufBytes").ToNumber().Int32Value();
  if (!failed && rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0) {
    failed = "setsockopt(SO_RCVBUF)";
  }
  int sndbuf = o.Get("sndbufBytes").ToNumber().Int32Value();
  if (!failed && sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) != 0) {
    failed = "setsockopt(SO_SNDBUF)";
  }
  // SO_NO_CHECK: send UDP with a zero checksum (VXLAN, RFC 7348 section 5).
  if (!failed && kind_ == Kind::kInet && o.Get("noUdpChecksum").ToBoolean().Value() &&
      setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof(one)) != 0) {
    failed = "setsockopt(SO_NO_CHECK)";
  }
  if (!failed && ::bind(fd, reinterpret_cast<sockaddr*>(&bindAddr), bindLen) != 0) failed = "bind";
  // UDP GSO (send stage 2): probe with UDP_SEGMENT = 0 (per-message size comes in a cmsg);
  // ENOPROTOOPT on kernels without it. Never with SO_NO_CHECK (the kernel refuses that pair).
  if (!failed && kind_ == Kind::kInet && o.Get("udpGso").ToBoolean().Value() &&
      !o.Get("noUdpChecksum").ToBoolean().Value()) {
    int zero = 0;
    gso_ = setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof(zero)) == 0;
  }
  Napi::Value group = o.Get("mcastGroup");
  if (!failed && kind_ == Kind::kInet && group.IsString()) {
    std::string g = group.As<Napi::String>().Utf8Value();
    std::string ifs = o.Get("mcastInterface").As<Napi::String>().Utf8Value();
    failedWhere = where + " (group " + g + ", interface " + ifs + ")";
    ip_mreq mreq;
    memset(&mreq, 0, sizeof(mreq));
    if (inet_pton(AF_INET, g.c_str(), &mreq.imr_multiaddr) != 1 ||
        inet_pton(AF_INET, ifs.c_str(), &mreq.imr_interface) != 1) {
      ::close(fd);
      ErrnoError(env, EINVAL, "inet_pton", failedWhere).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int ttl = o.Get("mcastTtl").ToNumber().Int32Value();
    int loop = o.Get("mcastLoop").ToBoolean().Value() ? 1 : 0;
    if (o.Get("mcastJoin").ToBoolean().Value() &&
        setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) != 0) {
      failed = "setsockopt(IP_ADD_MEMBERSHIP)";
    } else if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq.imr_interface, sizeof(mreq.imr_interface)) != 0) {
      failed = "setsockopt(IP_MULTICAST_IF)";
    } else if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) != 0) {
      failed = "setsockopt(IP_MULTICAST_TTL)";
    } else if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) != 0) {
      failed = "setsockopt(IP_MULTICAST_LOOP)";
    }
  }
  if (failed) {
    int err = errno;
    ::close(fd);
    ErrnoError(env, err, failed, failedWhere).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  flowControl_ = kind_ == Kind::kUnix && o.Get("flowControl").ToBoolean().Value();
  Napi::Value maxPeers = o.Get("maxPeers");
  if (maxPeers.IsNumber()) table_.SetLimit(maxPeers.As<Napi::Number>().Int32Value());
  fd_ = fd;
  return env.Undefined();
}

// ignoreSource(host, port): attaches a classic BPF socket filter that drops, in the kernel,
// every UDP datagram from host:port (host "0.0.0.0": from that port on any address). For the
// mcast port: its own frames come back through multicast loopback to the socket bound to the
// group, and without the filter each one is copied out, looked at and dropped in JS (half of the
// receive work of a busy group). UDP runs socket filters with skb->data at the UDP header, so
// the source port is at offset 0 and the source address at SKF_NET_OFF + 12 (the IPv4 header).
// Returns true when attached (udp4 only).
Napi::Value BatchSocket::IgnoreSource(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0 || kind_ != Kind::kInet || info.Length() != 2 || !info[0].IsString() || !info[1].IsNumber()) {
    return Napi::Boolean::New(env, false);
  }
  std::string host = info[0].As<Napi::String>().Utf8Value();
  uint32_t port = info[1].As<Napi::Number>().Uint32Value();
  in_addr a;
  if (inet_pton(AF_INET, host.c_str(), &a) != 1 || port == 0 || port > 65535) return Napi::Boolean::New(env, false);
  uint32_t ip = ntohl(a.s_addr);
  sock_filter anyAddr[] = {
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 0),                         // A = UDP source port
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1),               // ours? drop : accept
      BPF_STMT(BPF_RET | BPF_K, 0),
      BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),
  };
  sock_filter oneAddr[] = {
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 0),                         // A = UDP source port
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 3),               // not ours: accept
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_NET_OFF + 12)),  // A = IPv4 source
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ip, 0, 1),                 // ours? drop : accept
      BPF_STMT(BPF_RET | BPF_K, 0),
      BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),
  };
  sock_fprog prog;
  if (ip == 0) {
    prog.len = sizeof(anyAddr) / sizeof(anyAddr[0]);
    prog.filter = anyAddr;
  } else {
    prog.len = sizeof(oneAddr) / sizeof(oneAddr[0]);
    prog.filter = oneAddr;
  }
  return Napi::Boolean::New(env, setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) == 0);
}

// acceptSources(nets, exact): udp4 only. From now on a datagram is taken only from a source
// inside one of nets (a flat array of [network, mask] host-order uint32 pairs) or equal to one
// of exact ([address, port] pairs); any other is dropped before it gets a peer id (no state for
// it) and counted in kNotAccepted. Empty arrays accept nothing. The lists are short (the
// locator caps them), so a linear scan per datagram costs less than a lookup structure.
Napi::Value BatchSocket::AcceptSources(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (kind_ != Kind::kInet || info.Length() != 2 || !info[0].IsArray() || !info[1].IsArray()) {
    return Napi::Boolean::New(env, false);
  }
  Napi::Array nets = info[0].As<Napi::Array>();
  Napi::Array exact = info[1].As<Napi::Array>();
  acceptNets_.clear();
  acceptExact_.clear();
  for (uint32_t i = 0; i + 1 < nets.Length(); i += 2) {
    uint32_t mask = nets.Get(i + 1).ToNumber().Uint32Value();
    acceptNets_.push_back({nets.Get(i).ToNumber().Uint32Value() & mask, mask});
  }
  for (uint32_t i = 0; i + 1 < exact.Length(); i += 2) {
    acceptExact_.push_back({exact.Get(i).ToNumber().Uint32Value(), exact.Get(i + 1).ToNumber().Uint32Value()});
  }
  acceptOn_ = true;
  return Napi::Boolean::New(env, true);
}

// Returns {kind:'udp4', host, port} or {kind:'unix', path} for the bound address.
Napi::Value BatchSocket::LocalAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (fd_ < 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    ErrnoError(env, fd_ < 0 ? EBADF : errno, "getsockname", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  PeerAddr p;
  if (!Canonical(ss, len, &p)) return env.Null();
  return AddressObject(env, p);
}

// peerIdInet(host, port) -> id (or -1 when the table is full). Throws on a bad address.
Napi::Value BatchSocket::PeerIdInet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  sockaddr_in* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) != 1) {
    ErrnoError(env, EINVAL, "inet_pton", host).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  PeerAddr p;
  Canonical(ss, sizeof(sockaddr_in), &p);
  int id = table_.Intern(p, true, false);
  NotePeers();
  return Napi::Number::New(env, id);
}

// peerIdUnix(path) -> id (or -1 when the table is full).
Napi::Value BatchSocket::PeerIdUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  sockaddr_un* sun = reinterpret_cast<sockaddr_un*>(&ss);
  sun->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sun->sun_path)) {
    ErrnoError(env, ENAMETOOLONG, "peerId", path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  memcpy(sun->sun_path, path.data(), path.size());
  PeerAddr p;
  Canonical(ss, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1), &p);
  int id = table_.Intern(p, true, false);
  NotePeers();
  return Napi::Number::New(env, id);
}

Napi::Value BatchSocket::PeerAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const PeerAddr* p = table_.Get(info[0].ToNumber().Int32Value());
  if (!p) return env.Null();
  return AddressObject(env, *p);
}

// releasePeer(id): the owner keeps nothing for this id any more (and sends nothing more to it):
// its address is forgotten, a unix backlog waiting for it is dropped (counted in kSendDropped),
// and the id may be given to another address. Returns false when the id was not in use.
Napi::Value BatchSocket::ReleasePeer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int id = info[0].ToNumber().Int32Value();
  if (id >= 0 && id < static_cast<int>(backlogs_.size()) && backlogs_[id]) {
    PeerBacklog* b = backlogs_[id].get();
    counters_[kSendDropped] += b->count;
    counters_[kSendErrors] += b->count;
    counters_[kSendQueued] -= b->count;
    SetWaitingOnSelf(b, false);
    CloseDoorbell(b);
    Release(b);
    CloseFlowTimer(b);
    b->Clear();
    backlogs_[id].reset();
  }
  bool released = table_.Release(id);
  NotePeers();
  return Napi::Boolean::New(env, released);
}

// enablePeerEviction(report): opts in to eviction when the peer table is full (PeerTable).
// report is an Int32Array of evictedMax + 1: the addon appends evicted ids at report[1 ..
// report[0]] and JS, before it handles the next batch, takes them, sets report[0] = 0 and
// releases each id.
Napi::Value BatchSocket::EnablePeerEviction(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      info[0].As<Napi::Int32Array>().ElementLength() < static_cast<size_t>(kEvictedMax) + 1) {
    Napi::TypeError::New(env, "BatchSocket: enablePeerEviction needs an Int32Array of evictedMax + 1 (use src/io)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Int32Array report = info[0].As<Napi::Int32Array>();
  memory_.push_back(Napi::Persistent(report.As<Napi::Object>()));
  table_.SetEviction(report.Data());
  return env.Undefined();
}

// start(callback): callback(count) runs once per received batch until close().
Napi::Value BatchSocket::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0 || started_ || !info[0].IsFunction()) {
    Napi::Error::New(env, "BatchSocket: start() needs an open socket, a callback, and may run once").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!loop_) {
    Napi::Error::New(env, "BatchSocket: no libuv loop").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  started_ = true;
  int r = UpdateMainPoll();
  if (r != 0) {
    started_ = false;
    ErrnoError(env, -r, "uv_poll_start", "").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  callback_ = Napi::Persistent(info[0].As<Napi::Function>());
  HoldSelf();
  BusyJoin(inst_->busy, this);
  return env.Undefined();
}

// The main socket's poll: UV_READABLE once started, UV_WRITABLE while some backlog waits for
// our own send buffer. Returns 0 or a libuv error.
int BatchSocket::UpdateMainPoll() {
  int events = (started_ && pausedBy_ == 0 ? UV_READABLE : 0) | (selfWaiters_ > 0 ? UV_WRITABLE : 0);
  if (events == 0) {
    if (poll_) uv_poll_stop(poll_);
    return 0;
  }
  if (!poll_) {
    if (!loop_ || fd_ < 0) return UV_EBADF;
    poll_ = new uv_poll_t;
    int r = uv_poll_init(loop_, poll_, fd_);
    if (r != 0) {
      delete poll_;
      poll_ = nullptr;
      return r;
    }
    poll_->data = this;
  }
  return uv_poll_start(poll_, events, OnPoll);
}

// copyIn(buf, off, len, at): copies buf[off, off+len) to txSlab[at]. Buffer.prototype.copy of a
// sub-range allocates a Uint8Array view per call in Node 20; this does not. Returns false when a
// range is out of bounds (nothing copied).
Napi::Value BatchSocket::CopyIn(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  void* data = nullptr;
  size_t size = 0;
  uint32_t off = 0, len = 0, at = 0;
  if (napi_get_buffer_info(env, info[0], &data, &size) != napi_ok ||
      napi_get_value_uint32(env, info[1], &off) != napi_ok ||
      napi_get_value_uint32(env, info[2], &len) != napi_ok ||
      napi_get_value_uint32(env, info[3], &at) != napi_ok ||
      static_cast<size_t>(off) + len > size || static_cast<size_t>(at) + len > txBytes_) {
    return Napi::Boolean::New(env, false);
  }
  memcpy(txBase_ + at, static_cast<uint8_t*>(data) + off, len);
  return Napi::Boolean::New(env, true);
}

// rxSlabId(): this socket's rx slab id for other sockets' txSrcs (0: not registered, copy instead).
Napi::Value BatchSocket::RxSlabId(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), rxSlabId_);
}

// flush(count): sends txOffs/txLens/txPeers[0..count) from the tx slab or the rx slab txSrcs names.
// Returns datagrams sent now (backlogged ones are not counted).
Napi::Value BatchSocket::Flush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int count = info[0].As<Napi::Number>().Int32Value();
  if (count > txCap_) count = txCap_;
  if (fd_ < 0 || count <= 0) return Napi::Number::New(env, 0);
  // Stage 1: one iovec per valid queued datagram, one mmsghdr per message. A unix peer with a
  // backlog gets the datagram appended there instead, behind the ones already waiting. On UDP
  // with GSO, a datagram joins the previous message when it goes to the same peer, the message
  // so far is all one length and this one is no longer (the kernel's GSO rule), and the message
  // stays within kGsoMaxSegments / kGsoMaxBytes.
  int k = 0;  // messages
  int v = 0;  // iovecs
  for (int i = 0; i < count; i++) {
    int id = txPeers_[i];
    const PeerAddr* p = table_.Get(id);
    int32_t off = txOffs_[i];
    int32_t len = txLens_[i];
    int32_t src = txSrcs_[i];
    uint8_t* base = txBase_;
    size_t bytes = txBytes_;
    if (src != 0) {
      const RxSlabEntry e = inst_->slabs.Lookup(src);
      base = e.base;
      bytes = e.bytes;
    }
    if (!p || !base || off < 0 || len < 0 || static_cast<size_t>(off) + static_cast<size_t>(len) > bytes) {
      counters_[kSendErrors] += 1;
      continue;
    }
    PeerBacklog* b = ActiveBacklog(id);
    if (b) {
      Backlog(b, base + off, static_cast<size_t>(len), src);
      continue;
    }
    txIov_[v].iov_base = base + off;
    txIov_[v].iov_len = static_cast<size_t>(len);
    if (gso_ && k > 0 && txIds_[k - 1] == id && len > 0) {
      msghdr& prev = txHdrs_[k - 1].msg_hdr;
      size_t seg = prev.msg_iov[0].iov_len;
      if (prev.msg_iov[prev.msg_iovlen - 1].iov_len == seg && static_cast<size_t>(len) <= seg &&
          seg <= gsoMaxSeg_ && txSegs_[k - 1] < kGsoMaxSegments &&
          txMsgBytes_[k - 1] + static_cast<size_t>(len) <= kGsoMaxBytes) {
        prev.msg_iovlen++;
        txSegs_[k - 1]++;
        txMsgBytes_[k - 1] += static_cast<size_t>(len);
        v++;
        continue;
      }
    }
    msghdr& h = txHdrs_[k].msg_hdr;
    h.msg_name = const_cast<sockaddr_storage*>(&p->addr);
    h.msg_namelen = p->len;
    h.msg_iov = &txIov_[v];
    h.msg_iovlen = 1;
    h.msg_control = nullptr;
    h.msg_controllen = 0;
    txIds_[k] = id;
    txSegs_[k] = 1;
    txMsgBytes_[k] = static_cast<size_t>(len);
    txMsgSrcs_[k] = src;
    v++;
    k++;
  }
  // The UDP_SEGMENT cmsg of each GSO message: the segment size is its first datagram's length.
  if (gso_) {
    for (int m = 0; m < k; m++) {
      if (txSegs_[m] < 2) continue;
      msghdr& h = txHdrs_[m].msg_hdr;
      uint8_t* ctl = txCtl_.data() + static_cast<size_t>(m) * CMSG_SPACE(sizeof(uint16_t));
      h.msg_control = ctl;
      h.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t seg = static_cast<uint16_t>(h.msg_iov[0].iov_len);
      memcpy(CMSG_DATA(c), &seg, sizeof(seg));
    }
  }
  // Stage 2: sendmmsg until all are sent, dropped or backlogged.
  int sent = 0;
  int i = 0;
  while (i < k) {
    int r = sendmmsg(fd_, &txHdrs_[i], static_cast<unsigned>(k - i), MSG_DONTWAIT);
    if (r > 0) {
      for (int m = i; m < i + r; m++) {
        sent += txSegs_[m];
        if (txSegs_[m] > 1) {
          counters_[kGsoMessages] += 1;
          counters_[kGsoDatagrams] += txSegs_[m];
        }
      }
      i += r;
      continue;
    }
    int err = r < 0 ? errno : EIO;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
      if (kind_ == Kind::kInet) {
        // Our own send buffer is full (ours to drop): every remaining datagram would fail the
        // same way.
        int rest = 0;
        for (int m = i; m < k; m++) rest += txSegs_[m];
        counters_[kSendDropped] += rest;
        counters_[kSendErrors] += rest;
        break;
      }
      // Unix: that receiver's queue (or our buffer) is full. Its datagram i and every later one
      // to the same peer in this flush go to its backlog, in order; the others carry on.
      // (Unix messages are always one datagram each: no GSO.)
      int id = txIds_[i];
      PeerBacklog* b = BacklogFor(id);
      if (!b) {
        counters_[kSendDropped] += 1;
        counters_[kSendErrors] += 1;
        i++;
        continue;
      }
      int w = i;
      for (int j = i; j < k; j++) {
        if (txIds_[j] == id) {
          Backlog(b, static_cast<uint8_t*>(txHdrs_[j].msg_hdr.msg_iov[0].iov_base), txHdrs_[j].msg_hdr.msg_iov[0].iov_len,
                  txMsgSrcs_[j]);
        } else if (w != j) {
          txHdrs_[w].msg_hdr.msg_iov = txHdrs_[j].msg_hdr.msg_iov;
          txHdrs_[w].msg_hdr.msg_name = txHdrs_[j].msg_hdr.msg_name;
          txHdrs_[w].msg_hdr.msg_namelen = txHdrs_[j].msg_hdr.msg_namelen;
          txIds_[w] = txIds_[j];
          txSegs_[w] = 1;
          txMsgSrcs_[w] = txMsgSrcs_[j];
          w++;
        } else {
          w++;
        }
      }
      k = w;
      if (b->count > 0) Service(b, true);
      continue;
    }
    if (txSegs_[i] > 1 && (err == EINVAL || err == EIO || err == EMSGSIZE)) {
      // The path refused the GSO message (segment above its MTU, no checksum offload): no more
      // GSO for segments this large on this socket, and this message's datagrams go one by one.
      // EIO: the route's device cannot checksum for us, so GSO can never work here.
      size_t seg = txHdrs_[i].msg_hdr.msg_iov[0].iov_len;
      if (err == EIO) gso_ = false;
      if (seg <= gsoMaxSeg_) gsoMaxSeg_ = seg - 1;
      sent += SendOneByOne(txHdrs_[i].msg_hdr);
      i++;
      continue;
    }
    // Any other error (ENOENT/ECONNREFUSED for a vanished unix peer, EMSGSIZE, ...) belongs to
    // message i alone: count its datagrams and go on with the rest.
    counters_[kSendErrors] += txSegs_[i];
    i++;
  }
  return Napi::Number::New(env, sent);
}

// Sends each datagram of a GSO message as a message of its own (the scratch headers of the
// backlog path; it is idle here, Flush runs to completion). Returns datagrams sent; the rest are
// counted as errors or drops.
int BatchSocket::SendOneByOne(const msghdr& m) {
  int n = static_cast<int>(m.msg_iovlen);
  for (int j = 0; j < n; j++) {
    blIov_[j] = m.msg_iov[j];
    blHdrs_[j].msg_hdr.msg_name = m.msg_name;
    blHdrs_[j].msg_hdr.msg_namelen = m.msg_namelen;
  }
  int sent = 0;
  int j = 0;
  while (j < n) {
    int r = sendmmsg(fd_, &blHdrs_[j], static_cast<unsigned>(n - j), MSG_DONTWAIT);
    if (r > 0) {
      j += r;
      sent += r;
      continue;
    }
    int err = r < 0 ? errno : EIO;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
      counters_[kSendDropped] += n - j;
      counters_[kSendErrors] += n - j;
      break;
    }
    counters_[kSendErrors] += 1;
    j++;
  }
  return sent;
}

Napi::Value BatchSocket::Close(const Napi::CallbackInfo& info) {
  CloseNow();
  return info.Env().Undefined();
}

void BatchSocket::CloseNow() {
  if (closed_) return;
  closed_ = true;
  BusyLeave(inst_->busy, this);
  // Backlogs: whatever still waits is dropped (a full-queue loss), doorbells closed.
  for (auto& b : backlogs_) {
    if (!b) continue;
    counters_[kSendDropped] += b->count;
    counters_[kSendErrors] += b->count;
    counters_[kSendQueued] -= b->count;
    CloseDoorbell(b.get());
    Release(b.get());
    CloseFlowTimer(b.get());
    b->Clear();
  }
  backlogs_.clear();
  selfWaiters_ = 0;
  if (poll_) {
    // The fd must not be closed while libuv still watches it: stop, then close the fd.
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), FreePoll);
    poll_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!callback_.IsEmpty()) callback_.Reset();
  if (referenced_) {
    referenced_ = false;
    Unref();
  }
}

void BatchSocket::OnPoll(uv_poll_t* handle, int status, int events) {
  BatchSocket* self = static_cast<BatchSocket*>(handle->data);
  if (self->fd_ < 0) return;
  if (status < 0) {
    self->counters_[kRecvErrors] += 1;
    return;
  }
  if ((events & UV_WRITABLE) && self->selfWaiters_ > 0) self->OnSelfWritable();
  if ((events & UV_READABLE) && self->started_ && self->fd_ >= 0 && self->pausedBy_ == 0) {
    const int n = self->Receive();
    if (n > 0) BusySpin(self->inst_->busy, n);
  }
}

int BatchSocket::Receive() {
  int delivered = 0;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  for (int round = 0; round < kMaxBatchesPerWakeup && fd_ >= 0; round++) {
    // Stage 2: recvmmsg rewrites msg_namelen and msg_flags, so reset them each round.
    for (int i = 0; i < batch_; i++) {
      rxHdrs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      rxHdrs_[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(fd_, rxHdrs_.data(), static_cast<unsigned>(batch_), MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) counters_[kRecvErrors] += 1;
      return delivered;
    }
    if (n == 0) return delivered;
    table_.NextRound();
    int out = 0;
    for (int i = 0; i < n; i++) {
      const msghdr& h = rxHdrs_[i].msg_hdr;
      // Stage 3: a truncated frame is useless to a switch; count it and close the gap (the
      // slots after it move down, a memmove on this rare path only).
      if (h.msg_flags & MSG_TRUNC) {
        counters_[kTruncated] += 1;
        continue;
      }
      // Stage 4: map the source to a peer id. A source outside the accept list gets none (and
      // leaves no state); a datagram without a usable id (an unbound unix sender, or the peer
      // table full) is dropped here, so every delivered peer id is valid.
      if (acceptOn_ && !Accepts(rxNames_[i])) {
        counters_[kNotAccepted] += 1;
        continue;
      }
      PeerAddr p;
      int id = Canonical(rxNames_[i], h.msg_namelen, &p) ? table_.Intern(p, false, true) : -1;
      if (id < 0) {
        counters_[kUnaddressable] += 1;
        continue;
      }
      uint32_t len = rxHdrs_[i].msg_len;
      if (out != i) {
        memmove(rxBase_ + static_cast<size_t>(out) * slotBytes_, rxBase_ + static_cast<size_t>(i) * slotBytes_, len);
      }
      lengths_[out] = static_cast<int32_t>(len);
      peers_[out] = id;
      out++;
    }
    NotePeers();
    // Stage 5: hand the batch to JS.
    if (out > 0) {
      delivered += out;
      napi_value argv[1] = {Napi::Number::New(env, out)};
      callback_.MakeCallback(Value(), 1, argv, *asyncContext_);
      if (env.IsExceptionPending()) {
        // No JS frame is below us to catch it: report it like any uncaught exception.
        Napi::Error e = env.GetAndClearPendingException();
        napi_fatal_exception(env, e.Value());
        return delivered;
      }
    }
    if (n < batch_) return delivered;  // The queue is drained; skip the EAGAIN round trip.
    if (pausedBy_ > 0) return delivered;  // a receiver is slow: leave the rest to its senders' queues
  }
  return delivered;
}

Napi::Value BatchSocket::AddressObject(Napi::Env env, const PeerAddr& p) {
  Napi::Object o = Napi::Object::New(env);
  if (p.addr.ss_family == AF_INET) {
    const sockaddr_in* sin = reinterpret_cast<const sockaddr_in*>(&p.addr);
    char host[INET_ADDRSTRLEN] = "";
    inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
    o.Set("kind", "udp4");
    o.Set("host", host);
    o.Set("port", Napi::Number::New(env, ntohs(sin->sin_port)));
  } else {
    const sockaddr_un* sun = reinterpret_cast<const sockaddr_un*>(&p.addr);
    size_t n = p.len - offsetof(sockaddr_un, sun_path);
    if (sun->sun_path[0] != '\0' && n > 0) n--;  // Drop the terminating NUL of a pathname.
    o.Set("kind", "unix");
    o.Set("path", Napi::String::New(env, sun->sun_path, n));
  }
  return o;
}

void InitBatchSocket(Napi::Env env, Napi::Object exports) { BatchSocket::Init(env, exports); }

}  // namespace lanparty
