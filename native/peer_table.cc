// Address canonicalisation and the keyed hash behind the peer table (peer_table.h).
#include "peer_table.h"

#include <netinet/in.h>
#include <stddef.h>
#include <sys/random.h>
#include <sys/un.h>

#include <random>

namespace lanparty {

bool Canonical(const sockaddr_storage& in, socklen_t inLen, PeerAddr* out) {
  memset(&out->addr, 0, sizeof(out->addr));
  if (in.ss_family == AF_INET && inLen >= sizeof(sockaddr_in)) {
    const sockaddr_in* s = reinterpret_cast<const sockaddr_in*>(&in);
    sockaddr_in* d = reinterpret_cast<sockaddr_in*>(&out->addr);
    d->sin_family = AF_INET;
    d->sin_port = s->sin_port;
    d->sin_addr = s->sin_addr;
    out->len = sizeof(sockaddr_in);
    return true;
  }
  if (in.ss_family == AF_UNIX) {
    constexpr socklen_t kPathOff = offsetof(sockaddr_un, sun_path);
    if (inLen <= kPathOff) return false;  // Unnamed sender: no address to reply to.
    if (inLen > sizeof(sockaddr_un)) inLen = sizeof(sockaddr_un);
    const sockaddr_un* s = reinterpret_cast<const sockaddr_un*>(&in);
    sockaddr_un* d = reinterpret_cast<sockaddr_un*>(&out->addr);
    d->sun_family = AF_UNIX;
    size_t pathMax = inLen - kPathOff;
    if (s->sun_path[0] != '\0') {
      // Pathname socket: Linux reports strlen + 1, but be exact about the NUL either way.
      size_t n = strnlen(s->sun_path, pathMax);
      if (n >= sizeof(d->sun_path)) return false;
      memcpy(d->sun_path, s->sun_path, n);
      out->len = static_cast<socklen_t>(kPathOff + n + 1);
    } else {
      // Abstract socket: every byte of the reported length is part of the name.
      memcpy(d->sun_path, s->sun_path, pathMax);
      out->len = inLen;
    }
    return true;
  }
  return false;
}

// SipHash-1-3 (Aumasson and Bernstein; the variant Rust's HashMap and CPython use for tables that
// take untrusted keys): a keyed 64-bit hash, so a sender cannot choose addresses that collide in
// the peer table without knowing the key, which is random per process (PeerHashKey).
inline uint64_t Rotl64(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

inline void SipRound(uint64_t& v0, uint64_t& v1, uint64_t& v2, uint64_t& v3) {
  v0 += v1; v1 = Rotl64(v1, 13); v1 ^= v0; v0 = Rotl64(v0, 32);
  v2 += v3; v3 = Rotl64(v3, 16); v3 ^= v2;
  v0 += v3; v3 = Rotl64(v3, 21); v3 ^= v0;
  v2 += v1; v1 = Rotl64(v1, 17); v1 ^= v2; v2 = Rotl64(v2, 32);
}

uint64_t SipHash13(uint64_t k0, uint64_t k1, const uint8_t* p, size_t n) {
  uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
  uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
  uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
  uint64_t v3 = k1 ^ 0x7465646279746573ull;
  const uint8_t* end = p + (n & ~static_cast<size_t>(7));
  for (; p != end; p += 8) {
    uint64_t m;
    memcpy(&m, p, 8);  // little-endian hosts (Linux on x86-64 and arm64); the key is random anyway
    v3 ^= m;
    SipRound(v0, v1, v2, v3);
    v0 ^= m;
  }
  uint64_t b = static_cast<uint64_t>(n) << 56;
  switch (n & 7) {
    case 7: b |= static_cast<uint64_t>(p[6]) << 48; [[fallthrough]];
    case 6: b |= static_cast<uint64_t>(p[5]) << 40; [[fallthrough]];
    case 5: b |= static_cast<uint64_t>(p[4]) << 32; [[fallthrough]];
    case 4: b |= static_cast<uint64_t>(p[3]) << 24; [[fallthrough]];
    case 3: b |= static_cast<uint64_t>(p[2]) << 16; [[fallthrough]];
    case 2: b |= static_cast<uint64_t>(p[1]) << 8; [[fallthrough]];
    case 1: b |= static_cast<uint64_t>(p[0]); break;
    default: break;
  }
  v3 ^= b;
  SipRound(v0, v1, v2, v3);
  v0 ^= b;
  v2 ^= 0xff;
  SipRound(v0, v1, v2, v3);
  SipRound(v0, v1, v2, v3);
  SipRound(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

PeerHashKey::PeerHashKey() {
  uint64_t k[2] = {0, 0};
  if (getrandom(k, sizeof(k), 0) != static_cast<ssize_t>(sizeof(k))) {
    std::random_device rd;
    k[0] = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    k[1] = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  k0 = k[0];
  k1 = k[1];
}

const PeerHashKey& HashKey() {
  static const PeerHashKey key;
  return key;
}

}  // namespace lanparty
