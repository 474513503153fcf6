// BatchSocket's unix peer backlogs and flow control (send stages 3-6 in docs/data-path.md).
#include "batch_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace lanparty {

// The peer's backlog, created on first use (null without a loop).
PeerBacklog* BatchSocket::BacklogFor(int id) {
  if (kind_ != Kind::kUnix || id < 0 || !loop_ || closed_) return nullptr;
  if (id >= static_cast<int>(backlogs_.size())) backlogs_.resize(id + 1);
  if (!backlogs_[id]) {
    backlogs_[id].reset(new PeerBacklog);
    backlogs_[id]->owner = this;
    backlogs_[id]->peer = id;
  }
  HoldSelf();  // Its poll handles will hold raw pointers to us.
  return backlogs_[id].get();
}

// Appends one datagram; when the backlog is full the NEWEST (this one) is dropped and counted
// as a full-queue drop, so a peer that never reads costs at most kBacklogBytes. `src` is the rx
// slab the datagram was forwarded from (0: copied in): a deep backlog pauses that socket.
void BatchSocket::Backlog(PeerBacklog* b, const uint8_t* data, size_t len, int32_t src) {
  if (b->Push(data, len)) {
    counters_[kSendQueued] += 1;
    if (src != 0 && !b->stuck && b->Deep()) Hold(b, src);
  } else {
    counters_[kSendDropped] += 1;
    counters_[kSendErrors] += 1;
  }
}

// Stops the unix socket that owns rx slab `src` from reading until this backlog is shallow
// again (Release), or its watchdog runs out. A UDP socket is never paused: its senders cannot
// be held back, the kernel would only drop at its queue instead of here.
void BatchSocket::Hold(PeerBacklog* b, int32_t src) {
  for (int32_t h : b->holding) {
    if (h == src) return;
  }
  BatchSocket* s = inst_->slabs.Lookup(src).owner;
  if (!s || s->kind_ != Kind::kUnix || !s->flowControl_ || s->closed_ || !s->started_) return;
  if (b->holding.empty() && StartFlowTimer(b) != 0) return;  // a wait without a bound: none
  b->holding.push_back(src);
  s->pausedBy_ += 1;
  s->UpdateMainPoll();
  counters_[kFlowPauses] += 1;
}

// Lets every socket this backlog holds read again.
void BatchSocket::Release(PeerBacklog* b) {
  if (b->timer) uv_timer_stop(b->timer);
  for (int32_t id : b->holding) {
    BatchSocket* s = inst_->slabs.Lookup(id).owner;
    if (!s) continue;  // gone
    s->pausedBy_ -= 1;
    if (!s->closed_) s->UpdateMainPoll();
  }
  b->holding.clear();
}

int BatchSocket::StartFlowTimer(PeerBacklog* b) {
  if (!b->timer) {
    b->timer = new uv_timer_t;
    int r = uv_timer_init(loop_, b->timer);
    if (r != 0) {
      delete b->timer;
      b->timer = nullptr;
      return r;
    }
    b->timer->data = b;
  }
  return uv_timer_start(b->timer, OnFlowTimeout, kFlowPauseMaxMs, 0);
}

// The backlog held a socket kFlowPauseMaxMs without draining to its resume marks: its receiver
// is stuck (stopped reading, or a loop of switches each waiting for the other). It lets go and
// pauses nobody again until it has emptied; meanwhile it drops at its bounds, as without flow
// control.
void BatchSocket::OnFlowTimeout(uv_timer_t* t) {
  PeerBacklog* b = static_cast<PeerBacklog*>(t->data);
  BatchSocket* self = b->owner;
  if (self->closed_ || b->holding.empty()) return;
  b->stuck = true;
  self->counters_[kFlowTimeouts] += 1;
  self->Release(b);
}

void BatchSocket::CloseFlowTimer(PeerBacklog* b) {
  if (!b->timer) return;
  uv_timer_stop(b->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(b->timer), FreeTimer);
  b->timer = nullptr;
}

// Sends from the backlog through the main socket until it is empty (returns 0) or a send is
// refused: EAGAIN/ENOBUFS (blocked) or a vanished peer (ENOENT/ECONNREFUSED) is returned.
// Other errors belong to one datagram, which is counted and skipped.
int BatchSocket::SendBacklog(PeerBacklog* b) {
  const PeerAddr* p = table_.Get(b->peer);
  while (b->count > 0) {
    int n = b->count < kBacklogSendBatch ? b->count : kBacklogSendBatch;
    for (int j = 0; j < n; j++) {
      int slot = (b->head + j) % kBacklogDatagrams;
      blIov_[j].iov_base = b->buf.get() + b->off[slot];
      blIov_[j].iov_len = b->len[slot];
      blHdrs_[j].msg_hdr.msg_name = const_cast<sockaddr_storage*>(&p->addr);
      blHdrs_[j].msg_hdr.msg_namelen = p->len;
    }
    int r = sendmmsg(fd_, blHdrs_, static_cast<unsigned>(n), MSG_DONTWAIT);
    if (r > 0) {
      b->Pop(r);
      counters_[kSendQueued] -= r;
      continue;
    }
    int err = r < 0 ? errno : EIO;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || PeerGone(err)) return err;
    b->Pop(1);
    counters_[kSendQueued] -= 1;
    counters_[kSendErrors] += 1;
  }
  return 0;
}

// (Re)connects the doorbell to the peer's path, creating it if needed. 0 or an errno.
int BatchSocket::ConnectDoorbell(PeerBacklog* b) {
  const PeerAddr* p = table_.Get(b->peer);
  if (b->doorbell < 0) {
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    b->doorbell = fd;
  }
  int r;
  do {
    r = ::connect(b->doorbell, reinterpret_cast<const sockaddr*>(&p->addr), p->len);
  } while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : errno;
}

// True when the doorbell reports writable now: the peer's queue has room.
bool BatchSocket::PeerHasRoom(PeerBacklog* b) {
  pollfd pfd;
  pfd.fd = b->doorbell;
  pfd.events = POLLOUT;
  pfd.revents = 0;
  return ::poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT);
}

// Makes progress on a backlog and arranges its next wakeup: sends until empty or blocked; when
// blocked, waits on the doorbell if the peer's queue is full, else on our own send buffer.
// `blocked`: the caller just got EAGAIN for this peer (skip the first send attempt).
void BatchSocket::Service(PeerBacklog* b, bool blocked) {
  if (closed_ || fd_ < 0) return;
  SetWaitingOnSelf(b, false);
  for (int attempt = 0; attempt < 2; attempt++) {
    int err = blocked && attempt == 0 ? EAGAIN : SendBacklog(b);
    if (err == 0) {
      // Drained: stop watching, free the ring, keep the doorbell for the next burst.
      StopDoorbellPoll(b);
      Release(b);
      b->stuck = false;
      b->Clear();
      return;
    }
    if (!b->holding.empty() && b->Shallow()) Release(b);
    if (PeerGone(err)) {
      DropBacklog(b);
      return;
    }
    // Blocked. A new doorbell is connected once; an existing one is reconnected when it claims
    // room that the send did not find (its old peer may be dead, e.g. QEMU restarted and
    // rebound the path).
    if (b->doorbell < 0 || attempt > 0) {
      int c = ConnectDoorbell(b);
      if (c != 0) {
        // ENOENT/ECONNREFUSED: the peer is gone. Anything else (EMFILE, ...): no way to wait.
        DropBacklog(b);
        return;
      }
    }
    if (!PeerHasRoom(b)) {
      if (StartDoorbellPoll(b) != 0) DropBacklog(b);
      return;
    }
    // The peer has room: it read just now (send again), or the full buffer is our own.
  }
  StopDoorbellPoll(b);
  SetWaitingOnSelf(b, true);
  if (UpdateMainPoll() != 0) {
    SetWaitingOnSelf(b, false);
    DropBacklog(b);
  }
}

int BatchSocket::StartDoorbellPoll(PeerBacklog* b) {
  if (!b->poll) {
    b->poll = new uv_poll_t;
    int r = uv_poll_init(loop_, b->poll, b->doorbell);
    if (r != 0) {
      delete b->poll;
      b->poll = nullptr;
      return r;
    }
    b->poll->data = b;
  }
  if (b->pollActive) return 0;
  int r = uv_poll_start(b->poll, UV_WRITABLE, OnDoorbell);
  if (r == 0) b->pollActive = true;
  return r;
}

void BatchSocket::StopDoorbellPoll(PeerBacklog* b) {
  if (b->poll && b->pollActive) uv_poll_stop(b->poll);
  b->pollActive = false;
}

// Closes the doorbell (poll handle first: libuv must not watch a closed fd).
void BatchSocket::CloseDoorbell(PeerBacklog* b) {
  StopDoorbellPoll(b);
  if (b->poll) {
    uv_close(reinterpret_cast<uv_handle_t*>(b->poll), FreePoll);
    b->poll = nullptr;
  }
  if (b->doorbell >= 0) {
    ::close(b->doorbell);
    b->doorbell = -1;
  }
}

// The peer is gone (or cannot be waited for): its backlog is a counted loss, its doorbell is
// closed, and its next datagram is sent afresh.
void BatchSocket::DropBacklog(PeerBacklog* b) {
  counters_[kSendErrors] += b->count;
  counters_[kSendQueued] -= b->count;
  SetWaitingOnSelf(b, false);
  CloseDoorbell(b);
  Release(b);
  b->stuck = false;
  b->Clear();
}

void BatchSocket::OnDoorbell(uv_poll_t* handle, int status, int events) {
  PeerBacklog* b = static_cast<PeerBacklog*>(handle->data);
  BatchSocket* self = b->owner;
  if (self->closed_ || self->fd_ < 0) return;
  if (status < 0) {
    // The doorbell failed (EBADF, ...): treat the peer as unreachable.
    self->DropBacklog(b);
    return;
  }
  self->Service(b, false);
}

// The main socket's send buffer has room again: retry every backlog that waited for it.
void BatchSocket::OnSelfWritable() {
  for (size_t id = 0; id < backlogs_.size() && selfWaiters_ > 0 && !closed_; id++) {
    PeerBacklog* b = backlogs_[id].get();
    if (b && b->waitingOnSelf) Service(b, false);
  }
  if (!closed_) UpdateMainPoll();
}

}  // namespace lanparty
