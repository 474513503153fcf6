/*
 * lpping: latency probe and MAC flooder for lanparty benchmarks (compiled by build.sh at bench
 * time, next to lpgen; never committed as a binary).
 *
 *   lpping echo ENDPOINT [--size N]      bound (dgram) or listening (stream): returns every frame
 *                                        to its sender with dst and src MACs swapped, until killed
 *   lpping ping ENDPOINT [options]       one frame in flight at a time: send, wait for the echo
 *                                        of that sequence number, record the round trip
 *   lpping macflood ENDPOINT [options]   --count frames, each from a fresh random unicast source
 *                                        MAC (locally administered), batched with sendmmsg
 *
 * ENDPOINT as in lpgen: udp:HOST:PORT, unix:PATH (one frame per datagram), tcp:HOST:PORT,
 * stream-unix:PATH (QEMU stream framing: 4-byte big-endian length, then the frame).
 * ping/macflood options: --bind EP (datagram source address), --size N, --count N,
 * --interval-us N (ping: gap between probes), --warmup N (ping: probes not recorded),
 * --timeout-ms N (ping: a probe with no echo by then is lost), --rate PPS (macflood),
 * --src MAC, --dst MAC.
 *
 * ping prints one JSON line: sent, lost, and round-trip percentiles in microseconds. The frame
 * carries ethertype 0x88b5 and a 32-bit sequence number at offset 14, like lpgen's.
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
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME 69632
#define FLOOD_BATCH 64

enum kind { K_UDP, K_UNIX, K_TCP, K_STREAM_UNIX };

struct endpoint {
  enum kind kind;
  struct sockaddr_storage addr;
  socklen_t len;
};

static void die(const char *what) {
  fprintf(stderr, "lpping: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(void) {
  fprintf(stderr,
          "usage: lpping echo|ping|macflood ENDPOINT [--bind EP] [--size N] [--count N] [--interval-us N]\n"
          "                                   [--warmup N] [--timeout-ms N] [--rate PPS] [--src MAC] [--dst MAC]\n"
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

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int is_stream(enum kind k) { return k == K_TCP || k == K_STREAM_UNIX; }
static int family_of(enum kind k) { return (k == K_UDP || k == K_TCP) ? AF_INET : AF_UNIX; }

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

/* Reads exactly len bytes; 0 at EOF, 1 on success. */
static int read_all(int fd, uint8_t *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, buf + got, len - got);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      die("read");
    }
    got += (size_t)n;
  }
  return 1;
}

/* One frame from a stream (length-prefixed); returns its length, or -1 at EOF. */
static long read_frame(int fd, uint8_t *buf) {
  uint32_t len;
  if (!read_all(fd, (uint8_t *)&len, 4)) return -1;
  len = ntohl(len);
  if (len > MAX_FRAME) {
    fprintf(stderr, "lpping: stream frame length %u over %d\n", len, MAX_FRAME);
    exit(1);
  }
  if (!read_all(fd, buf, len)) return -1;
  return (long)len;
}

static void write_frame(int fd, const uint8_t *buf, size_t len) {
  uint8_t hdr[4];
  uint32_t n = htonl((uint32_t)len);
  memcpy(hdr, &n, 4);
  struct iovec iov[2] = {{hdr, 4}, {(void *)buf, len}};
  ssize_t w = writev(fd, iov, 2);
  if (w < 0) die("writev");
  if ((size_t)w < 4 + len) {
    /* Short write: finish the rest plainly. */
    size_t done = (size_t)w;
    if (done < 4) {
      write_all(fd, hdr + done, 4 - done);
      done = 4;
    }
    write_all(fd, buf + (done - 4), len - (done - 4));
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static uint8_t frame[MAX_FRAME];

static int run_echo(struct endpoint *ep) {
  int stream = is_stream(ep->kind);
  int fd = socket(family_of(ep->kind), stream ? SOCK_STREAM : SOCK_DGRAM, 0);
  if (fd < 0) die("socket");
  int one = 1;
  if (family_of(ep->kind) == AF_INET) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&ep->addr, ep->len)) die("bind");
  if (stream) {
    if (listen(fd, 1)) die("listen");
    int c = accept(fd, NULL, NULL);
    if (c < 0) die("accept");
    if (ep->kind == K_TCP) setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (;;) {
      long n = read_frame(c, frame);
      if (n < 0) return 0;
      if (n >= 12) {
        uint8_t tmp[6];
        memcpy(tmp, frame, 6);
        memcpy(frame, frame + 6, 6);
        memcpy(frame + 6, tmp, 6);
      }
      write_frame(c, frame, (size_t)n);
    }
  }
  for (;;) {
    struct sockaddr_storage from;
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(fd, frame, sizeof(frame), 0, (struct sockaddr *)&from, &flen);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("recvfrom");
    }
    if (n >= 12) {
      uint8_t tmp[6];
      memcpy(tmp, frame, 6);
      memcpy(frame, frame + 6, 6);
      memcpy(frame + 6, tmp, 6);
    }
    if (sendto(fd, frame, (size_t)n, 0, (struct sockaddr *)&from, flen) < 0 && errno != ECONNREFUSED && errno != ENOENT) die("sendto");
  }
}

int main(int argc, char **argv) {
  if (argc < 3) usage();
  const char *mode = argv[1];
  struct endpoint ep, bind_ep;
  int have_bind = 0;
  if (parse_endpoint(argv[2], &ep)) usage();
  long size = 64, count = 1000, interval_us = 1000, warmup = 50, timeout_ms = 200, rate = 0;
  uint8_t src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x21}, dst[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x22};
  for (int i = 3; i < argc; i++) {
    const char *o = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (!strcmp(o, "--size")) size = atol(v);
    else if (!strcmp(o, "--count")) count = atol(v);
    else if (!strcmp(o, "--interval-us")) interval_us = atol(v);
    else if (!strcmp(o, "--warmup")) warmup = atol(v);
    else if (!strcmp(o, "--timeout-ms")) timeout_ms = atol(v);
    else if (!strcmp(o, "--rate")) rate = atol(v);
    else if (!strcmp(o, "--src")) { if (parse_mac(v, src)) usage(); }
    else if (!strcmp(o, "--dst")) { if (parse_mac(v, dst)) usage(); }
    else if (!strcmp(o, "--bind")) { if (parse_endpoint(v, &bind_ep)) usage(); have_bind = 1; }
    else usage();
  }
  if (size < 18 || size > MAX_FRAME || count < 1) usage();
  if (!strcmp(mode, "echo")) return run_echo(&ep);

  int stream = is_stream(ep.kind);
  int fd = socket(family_of(ep.kind), stream ? SOCK_STREAM : SOCK_DGRAM, 0);
  if (fd < 0) die("socket");
  if (have_bind && bind(fd, (struct sockaddr *)&bind_ep.addr, bind_ep.len)) die("bind");
  if (connect(fd, (struct sockaddr *)&ep.addr, ep.len)) die("connect");
  int one = 1;
  if (ep.kind == K_TCP) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  if (!strcmp(mode, "macflood")) {
    if (stream) usage();
    static uint8_t slab[FLOOD_BATCH][2048];
    static struct mmsghdr hdrs[FLOOD_BATCH];
    static struct iovec iov[FLOOD_BATCH];
    if (size > 2048) size = 2048;
    for (int b = 0; b < FLOOD_BATCH; b++) {
      memset(slab[b], 0, (size_t)size);
      memcpy(slab[b], dst, 6);
      slab[b][12] = 0x88;
      slab[b][13] = 0xb5;
      iov[b].iov_base = slab[b];
      iov[b].iov_len = (size_t)size;
      hdrs[b].msg_hdr.msg_iov = &iov[b];
      hdrs[b].msg_hdr.msg_iovlen = 1;
    }
    srandom((unsigned)now_ns());
    uint64_t start = now_ns();
    long sent = 0;
    while (sent < count) {
      int n = count - sent < FLOOD_BATCH ? (int)(count - sent) : FLOOD_BATCH;
      if (rate > 0) {
        uint64_t due = start + (uint64_t)((double)sent * 1e9 / (double)rate);
        uint64_t t = now_ns();
        if (due > t) {
          struct timespec ts = {(time_t)((due - t) / 1000000000ull), (long)((due - t) % 1000000000ull)};
          nanosleep(&ts, NULL);
        }
      }
      for (int b = 0; b < n; b++) {
        uint32_t r1 = (uint32_t)random(), r2 = (uint32_t)random();
        slab[b][6] = (uint8_t)((r1 & 0xfc) | 0x02); /* unicast, locally administered */
        slab[b][7] = (uint8_t)(r1 >> 8);
        slab[b][8] = (uint8_t)(r1 >> 16);
        slab[b][9] = (uint8_t)(r2);
        slab[b][10] = (uint8_t)(r2 >> 8);
        slab[b][11] = (uint8_t)(r2 >> 16);
      }
      int r = sendmmsg(fd, hdrs, (unsigned)n, 0);
      if (r < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == ENOBUFS || errno == ECONNREFUSED) continue;
        die("sendmmsg");
      }
      sent += r;
    }
    double secs = (double)(now_ns() - start) / 1e9;
    printf("{\"mode\":\"macflood\",\"frames\":%ld,\"seconds\":%.6f}\n", sent, secs);
    return 0;
  }

  if (strcmp(mode, "ping")) usage();
  memset(frame, 0, (size_t)size);
  memcpy(frame, dst, 6);
  memcpy(frame + 6, src, 6);
  frame[12] = 0x88;
  frame[13] = 0xb5;
  static uint8_t reply[MAX_FRAME];
  uint64_t *rtts = calloc((size_t)count, sizeof(uint64_t));
  if (!rtts) die("calloc");
  long recorded = 0, lost = 0;
  for (long i = 0; i < warmup + count; i++) {
    uint32_t seq = htonl((uint32_t)i);
    memcpy(frame + 14, &seq, 4);
    uint64_t t0 = now_ns();
    if (stream) write_frame(fd, frame, (size_t)size);
    else if (send(fd, frame, (size_t)size, 0) < 0 && errno != ECONNREFUSED) die("send");
    int got = 0;
    for (;;) {
      int left = timeout_ms - (int)((now_ns() - t0) / 1000000ull);
      if (left <= 0) break;
      struct pollfd p = {fd, POLLIN, 0};
      int pr = poll(&p, 1, left);
      if (pr < 0 && errno == EINTR) continue;
      if (pr <= 0) break;
      long n;
      if (stream) {
        n = read_frame(fd, reply);
        if (n < 0) { fprintf(stderr, "lpping: stream closed\n"); exit(1); }
      } else {
        n = recv(fd, reply, sizeof(reply), 0);
        if (n < 0) {
          if (errno == EINTR || errno == ECONNREFUSED) continue;
          die("recv");
        }
      }
      uint32_t rs;
      if (n < 18) continue;
      memcpy(&rs, reply + 14, 4);
      if (rs == seq) { got = 1; break; }
    }
    uint64_t rtt = now_ns() - t0;
    if (i >= warmup) {
      if (got) rtts[recorded++] = rtt;
      else lost++;
    }
    if (interval_us > 0) {
      struct timespec ts = {interval_us / 1000000, (interval_us % 1000000) * 1000};
      nanosleep(&ts, NULL);
    }
  }
  qsort(rtts, (size_t)recorded, sizeof(uint64_t), cmp_u64);
#define PCT(q) (recorded ? rtts[(size_t)((double)(recorded - 1) * (q))] / 1000.0 : -1.0)
  printf("{\"mode\":\"ping\",\"sent\":%ld,\"lost\":%ld,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
         count, lost, PCT(0.5), PCT(0.9), PCT(0.99), recorded ? rtts[recorded - 1] / 1000.0 : -1.0);
  return 0;
}
