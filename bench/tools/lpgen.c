/*
 * lpgen: Ethernet frame generator and sink for lanparty benchmarks (never committed as a binary;
 * bench/tools/build.sh compiles it at bench time).
 *
 *   lpgen send ENDPOINT [options]   sends --count frames of --size bytes, paced to --rate frames/s
 *   lpgen sink ENDPOINT [options]   counts frames until --idle-ms passes without one
 *
 * ENDPOINT: udp:HOST:PORT, unix:PATH (datagrams: one frame per datagram, sendmmsg/recvmmsg in
 * batches of --batch), tcp:HOST:PORT or stream-unix:PATH (QEMU stream framing: a 4-byte
 * big-endian length, then the frame; the sender writes each batch at once, the sink reads up to
 * 1 MiB at a time). For send, udp/unix go *to* ENDPOINT (bind with --bind
 * udp:HOST:PORT or --bind unix:PATH) and stream modes connect; for sink, ENDPOINT is bound
 * (streams: listen and accept one connection).
 *
 * Frame layout: dst MAC (--dst, default broadcast), src MAC (--src), ethertype 0x88b5 (IEEE local
 * experimental), then a 32-bit big-endian sequence number, zero padding to --size. The sink reports
 * frames, bytes, seconds, and frames missing or out of order by sequence, as one JSON line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* CPU seconds this process has used (user + system), for the benchmark's CPU-per-frame table. */
static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

#define MAX_BATCH 1024
#define MAX_FRAME 69632

enum kind { K_UDP, K_UNIX, K_TCP, K_STREAM_UNIX };

struct endpoint {
  enum kind kind;
  struct sockaddr_storage addr;
  socklen_t len;
};

static void die(const char *what) {
  fprintf(stderr, "lpgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(void) {
  fprintf(stderr,
          "usage: lpgen send|sink ENDPOINT [--bind EP] [--size N] [--count N] [--rate PPS] [--batch N]\n"
          "                               [--src MAC] [--dst MAC] [--idle-ms MS] [--rcvbuf BYTES]\n"
          "ENDPOINT: udp:HOST:PORT | unix:PATH | tcp:HOST:PORT | stream-unix:PATH\n");
  exit(2);
}

static int parse_endpoint(const char *s, struct endpoint *ep) {
  memset(ep, 0, sizeof(*ep));
  const char *rest;
  if (!strncmp(s, "udp:", 4)) { ep->kind = K_UDP; rest = s + 4; }
  else if (!strncmp(s, "tcp:", 4)) { ep->kind = K_TCP; rest = s + 4; }
  else if (!strncmp(s, "unix:", 5)) { ep->kind = K_UNIX; rest = s + 5; }
  else if (!strncmp(s, "stream-unix:", 12)) { ep->kind = K_STREAM_UNIX; rest = s + 12; }
  else return -1;
  if (ep->kind == K_UDP || ep->kind == K_TCP) {
    char host[64];
    const char *colon = strrchr(rest, ':');
    if (!colon || (size_t)(colon - rest) >= sizeof(host)) return -1;
    memcpy(host, rest, colon - rest);
    host[colon - rest] = 0;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ep->addr;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) return -1;
    ep->len = sizeof(*sin);
  } else {
    struct sockaddr_un *sun = (struct sockaddr_un *)&ep->addr;
    sun->sun_family = AF_UNIX;
    if (strlen(rest) == 0 || strlen(rest) >= sizeof(sun->sun_path)) return -1;
    strcpy(sun->sun_path, rest);
    ep->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(rest) + 1);
  }
  return 0;
}

static int parse_mac(const char *s, uint8_t mac[6]) {
  unsigned v[6];
  if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
  for (int i = 0; i < 6; i++) mac[i] = (uint8_t)v[i];
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int is_stream(enum kind k) { return k == K_TCP || k == K_STREAM_UNIX; }
static int family_of(enum kind k) { return (k == K_UDP || k == K_TCP) ? AF_INET : AF_UNIX; }

/* Writes all of buf to a blocking stream socket. */
static void write_all(int fd, const uint8_t *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    buf += n;
    len -= (size_t)n;
  }
}

/* Counts one received frame and checks its sequence number (bytes 14-17). */
static void account(const uint8_t *frame, uint32_t len, long *frames, long *bytes, long *missing, long *reordered, long *expect) {
  (*frames)++;
  *bytes += len;
  if (len < 18) return;
  uint32_t seq;
  memcpy(&seq, frame + 14, 4);
  long s = (long)ntohl(seq);
  if (s == *expect) (*expect)++;
  else if (s > *expect) { *missing += s - *expect; *expect = s + 1; }
  else { (*reordered)++; if (*missing > 0) (*missing)--; }
}

int main(int argc, char **argv) {
  if (argc < 3) usage();
  int sending = !strcmp(argv[1], "send");
  if (!sending && strcmp(argv[1], "sink")) usage();
  struct endpoint ep, bind_ep;
  int have_bind = 0;
  if (parse_endpoint(argv[2], &ep)) usage();
  long size = 64, count = 100000, rate = 0, batch = 64, idle_ms = 1000;
  /* The sink's receive buffer: the kernel default (208 KiB, ~270 small frames) overflows whenever
     the sink is descheduled for a few ms on a busy machine, which would make the sink, not the
     path under test, the bottleneck. Capped by net.core.rmem_max. */
  long rcvbuf = 4 << 20;
  uint8_t src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01}, dst[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  for (int i = 3; i < argc; i++) {
    const char *o = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (!strcmp(o, "--size")) size = atol(v);
    else if (!strcmp(o, "--count")) count = atol(v);
    else if (!strcmp(o, "--rate")) rate = atol(v);
    else if (!strcmp(o, "--batch")) batch = atol(v);
    else if (!strcmp(o, "--idle-ms")) idle_ms = atol(v);
    else if (!strcmp(o, "--rcvbuf")) rcvbuf = atol(v);
    else if (!strcmp(o, "--src")) { if (parse_mac(v, src)) usage(); }
    else if (!strcmp(o, "--dst")) { if (parse_mac(v, dst)) usage(); }
    else if (!strcmp(o, "--bind")) { if (parse_endpoint(v, &bind_ep)) usage(); have_bind = 1; }
    else usage();
  }
  if (size < 18 || size > MAX_FRAME || batch < 1 || batch > MAX_BATCH || count < 0) usage();

  static uint8_t slab[MAX_BATCH][MAX_FRAME];
  /* Stream send: a batch's frames with their lengths, written at once (up to 1 MiB a write). */
  enum { STREAM_BUF = 1 << 20 };
  static uint8_t stream_buf[STREAM_BUF];
  static struct mmsghdr hdrs[MAX_BATCH];
  static struct iovec iov[MAX_BATCH];
  int stream = is_stream(ep.kind);
  int fd = socket(family_of(ep.kind), stream ? SOCK_STREAM : SOCK_DGRAM, 0);
  if (fd < 0) die("socket");

  if (sending) {
    if (have_bind && bind(fd, (struct sockaddr *)&bind_ep.addr, bind_ep.len)) die("bind");
    if (stream) {
      if (connect(fd, (struct sockaddr *)&ep.addr, ep.len)) die("connect");
      int one = 1;
      if (ep.kind == K_TCP) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    for (long b = 0; b < batch; b++) {
      memset(slab[b], 0, (size_t)size);
      memcpy(slab[b], dst, 6);
      memcpy(slab[b] + 6, src, 6);
      slab[b][12] = 0x88;
      slab[b][13] = 0xb5;
      iov[b].iov_base = slab[b];
      iov[b].iov_len = (size_t)size;
      hdrs[b].msg_hdr.msg_iov = &iov[b];
      hdrs[b].msg_hdr.msg_iovlen = 1;
      hdrs[b].msg_hdr.msg_name = &ep.addr;
      hdrs[b].msg_hdr.msg_namelen = ep.len;
    }
    double start = now_s();
    long sent = 0, dropped = 0;
    while (sent + dropped < count) {
      long n = count - sent - dropped < batch ? count - sent - dropped : batch;
      if (rate > 0) {
        /* Pace per batch: sleep until this batch is due. */
        double due = start + (double)(sent + dropped) / (double)rate;
        double wait = due - now_s();
        /* Descheduled (a busy machine): catching up would send the whole backlog as one burst and
           measure the receive buffers, not the rate. Let the schedule slip instead, keeping at most
           2 ms of backlog; the sender's fps then reports the rate actually offered. */
        if (wait < -0.002) {
          start += -wait - 0.002;
          wait = -0.002;
        }
        if (wait > 0) {
          struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
          nanosleep(&ts, NULL);
        }
      }
      for (long b = 0; b < n; b++) {
        uint32_t seq = htonl((uint32_t)(sent + dropped + b));
        memcpy(slab[b] + 14, &seq, 4);
      }
      if (stream) {
        /* The batch in one write, each frame behind its length, like the datagram modes' one
           sendmmsg: two writes per frame (as before) made the sender, not the path, the limit at
           64 B, and on TCP_NODELAY each write left as a segment of its own. */
        size_t off = 0;
        for (long b = 0; b < n; b++) {
          uint32_t len = htonl((uint32_t)size);
          if (off + 4 + (size_t)size > STREAM_BUF) {
            write_all(fd, stream_buf, off);
            off = 0;
          }
          memcpy(stream_buf + off, &len, 4);
          memcpy(stream_buf + off + 4, slab[b], (size_t)size);
          off += 4 + (size_t)size;
        }
        write_all(fd, stream_buf, off);
        sent += n;
        continue;
      }
      int r = sendmmsg(fd, hdrs, (unsigned)n, 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == ENOBUFS || errno == ECONNREFUSED || errno == ENOENT) {
          dropped++; /* Lossy like Ethernet: count the first frame and go on. */
          continue;
        }
        die("sendmmsg");
      }
      sent += r;
    }
    double secs = now_s() - start;
    printf("{\"mode\":\"send\",\"frames\":%ld,\"dropped\":%ld,\"bytes\":%ld,\"seconds\":%.6f,\"fps\":%.0f,\"cpu_s\":%.6f}\n",
           sent, dropped, sent * size, secs, secs > 0 ? sent / secs : 0.0, cpu_s());
    close(fd);
    return 0;
  }

  /* Sink. */
  int one = 1;
  if (ep.kind == K_UDP || ep.kind == K_TCP) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (rcvbuf > 0) {
    int rb = (int)rcvbuf;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
  }
  if (bind(fd, (struct sockaddr *)&ep.addr, ep.len)) die("bind");
  int rfd = fd;
  if (stream) {
    if (listen(fd, 1)) die("listen");
    rfd = accept(fd, NULL, NULL);
    if (rfd < 0) die("accept");
  }
  for (long b = 0; b < batch; b++) {
    iov[b].iov_base = slab[b];
    iov[b].iov_len = MAX_FRAME;
    hdrs[b].msg_hdr.msg_iov = &iov[b];
    hdrs[b].msg_hdr.msg_iovlen = 1;
  }
  long frames = 0, bytes = 0, missing = 0, reordered = 0;
  long expect = 0;
  /* Stream sink: bytes read but not yet counted (a frame cut across reads waits for its rest). */
  enum { SINK_BUF = (1 << 20) + MAX_FRAME + 4 };
  static uint8_t sbuf[SINK_BUF];
  size_t have = 0;
  double first = 0, last = 0;
  for (;;) {
    struct pollfd p = {rfd, POLLIN, 0};
    int pr = poll(&p, 1, frames ? (int)idle_ms : -1);
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) die("poll");
    if (pr == 0) break; /* Idle after traffic: done. */
    if (stream) {
      /* As much as the socket has (up to 1 MiB) in one read, then every whole frame in it: one
         read per frame header and one per body (as before) made the sink the limit at 64 B. */
      ssize_t r = read(rfd, sbuf + have, SINK_BUF - have);
      if (r < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        die("read");
      }
      if (r == 0) {
        if (have > 0) {
          fprintf(stderr, "lpgen: stream closed mid-frame\n");
          exit(1);
        }
        break;
      }
      have += (size_t)r;
      last = now_s();
      if (!frames) first = last;
      size_t off = 0;
      while (have - off >= 4) {
        uint32_t len;
        memcpy(&len, sbuf + off, 4);
        len = ntohl(len);
        if (len > MAX_FRAME) {
          fprintf(stderr, "lpgen: stream frame length %u over %d\n", len, MAX_FRAME);
          return 1;
        }
        if (have - off < 4 + (size_t)len) break;
        account(sbuf + off + 4, len, &frames, &bytes, &missing, &reordered, &expect);
        off += 4 + (size_t)len;
      }
      memmove(sbuf, sbuf + off, have - off);
      have -= off;
      continue;
    }
    int n = recvmmsg(rfd, hdrs, (unsigned)batch, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      die("recvmmsg");
    }
    last = now_s();
    if (!frames) first = last;
    for (int i = 0; i < n; i++) account(slab[i], hdrs[i].msg_len, &frames, &bytes, &missing, &reordered, &expect);
  }
  double secs = last - first;
  printf("{\"mode\":\"sink\",\"frames\":%ld,\"bytes\":%ld,\"missing\":%ld,\"reordered\":%ld,\"seconds\":%.6f,\"fps\":%.0f,\"cpu_s\":%.6f}\n",
         frames, bytes, missing, reordered, secs, secs > 0 ? frames / secs : 0.0, cpu_s());
  if (rfd != fd) close(rfd);
  close(fd);
  return 0;
}
