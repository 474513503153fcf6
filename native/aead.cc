// ChaCha20-Poly1305 for the encrypted peer links (aeadSeal, aeadOpen).
#include "init.h"

#include <string.h>

#include <cstdint>

// Node ships OpenSSL's headers with its own (include/node/openssl); the peer links' AEAD uses them.
#if __has_include(<openssl/evp.h>)
#include <openssl/evp.h>
#define LP_HAVE_OPENSSL 1
#else
#define LP_HAVE_OPENSSL 0
#endif

// ChaCha20-Poly1305 (RFC 8439) for the encrypted peer links' data packets (src/transports/wg via
// src/io nativeAead), through the OpenSSL that Node itself is built with (its headers ship
// with Node's; the symbols resolve in the node process). Node's crypto API builds a Cipheriv
// object (and several Buffers) per packet, which costs more than the cipher; here one
// EVP_CIPHER_CTX per direction is kept and only the key and nonce change per call. Nothing is
// allocated per packet. The WireGuard nonce is 32 zero bits then the 64-bit little-endian counter.
//
//   aeadSeal(key, ctrLo, ctrHi, src, srcOff, srcLen, padded, dst, dstOff) -> padded + 16, or -1
//     seals src[srcOff, +srcLen) followed by (padded - srcLen) zero bytes (WireGuard's padding,
//     0..15 bytes) into dst[dstOff, +padded) and writes the 16-byte tag after it. No AAD.
//   aeadOpen(key, ctrLo, ctrHi, src, srcOff, srcLen, dst, dstOff) -> srcLen - 16, or -1
//     opens ciphertext + tag src[srcOff, +srcLen) into dst[dstOff, +srcLen - 16); -1 when the tag
//     does not verify (dst may then hold garbage: the caller discards it) or on bad arguments.
namespace lanparty {

#if LP_HAVE_OPENSSL

namespace {

// One per Node instance (each worker thread gets its own contexts): the functions' data pointer,
// freed by an env cleanup hook.
struct AeadState {
  EVP_CIPHER_CTX* seal = nullptr;
  EVP_CIPHER_CTX* open = nullptr;
  bool ok = false;
  AeadState() {
    seal = EVP_CIPHER_CTX_new();
    open = EVP_CIPHER_CTX_new();
    ok = seal && open &&
         EVP_EncryptInit_ex(seal, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr) == 1 &&
         EVP_DecryptInit_ex(open, EVP_chacha20_poly1305(), nullptr, nullptr, nullptr) == 1;
  }
  ~AeadState() {
    EVP_CIPHER_CTX_free(seal);
    EVP_CIPHER_CTX_free(open);
  }
};

void FreeAead(void* state) { delete static_cast<AeadState*>(state); }

bool BufferArg(napi_env env, napi_value v, uint8_t** data, size_t* size) {
  void* d = nullptr;
  if (napi_get_buffer_info(env, v, &d, size) != napi_ok) return false;
  *data = static_cast<uint8_t*>(d);
  return true;
}

bool U32Arg(napi_env env, napi_value v, uint32_t* out) { return napi_get_value_uint32(env, v, out) == napi_ok; }

void WgNonce(uint8_t nonce[12], uint32_t lo, uint32_t hi) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 4; i++) {
    nonce[4 + i] = static_cast<uint8_t>(lo >> (8 * i));
    nonce[8 + i] = static_cast<uint8_t>(hi >> (8 * i));
  }
}

// Both are plain N-API callbacks with the arguments in a stack array: Napi::CallbackInfo keeps
// six on the stack and allocates for more, and these two run once per packet.
napi_value NumberOut(napi_env env, double v) {
  napi_value r = nullptr;
  napi_create_double(env, v, &r);
  return r;
}

napi_value AeadSeal(napi_env env, napi_callback_info cb) {
  napi_value info[9];
  size_t argc = 9;
  void* state = nullptr;
  if (napi_get_cb_info(env, cb, &argc, info, nullptr, &state) != napi_ok) return nullptr;
  uint8_t *key, *src, *dst;
  size_t keyLen, srcSize, dstSize;
  uint32_t lo, hi, srcOff, srcLen, padded, dstOff;
  AeadState& a = *static_cast<AeadState*>(state);
  if (argc != 9 || !a.ok || !BufferArg(env, info[0], &key, &keyLen) || keyLen != 32 ||
      !U32Arg(env, info[1], &lo) || !U32Arg(env, info[2], &hi) || !BufferArg(env, info[3], &src, &srcSize) ||
      !U32Arg(env, info[4], &srcOff) || !U32Arg(env, info[5], &srcLen) || !U32Arg(env, info[6], &padded) ||
      !BufferArg(env, info[7], &dst, &dstSize) || !U32Arg(env, info[8], &dstOff) ||
      static_cast<size_t>(srcOff) + srcLen > srcSize || padded < srcLen || padded - srcLen > 15 ||
      static_cast<size_t>(dstOff) + padded + 16 > dstSize) {
    return NumberOut(env, -1);
  }
  static const uint8_t kZeros[16] = {0};
  uint8_t nonce[12];
  WgNonce(nonce, lo, hi);
  uint8_t* out = dst + dstOff;
  int n = 0, m = 0, f = 0;
  bool ok = EVP_EncryptInit_ex(a.seal, nullptr, nullptr, key, nonce) == 1 &&
            EVP_EncryptUpdate(a.seal, out, &n, src + srcOff, static_cast<int>(srcLen)) == 1 &&
            (padded == srcLen || EVP_EncryptUpdate(a.seal, out + n, &m, kZeros, static_cast<int>(padded - srcLen)) == 1) &&
            EVP_EncryptFinal_ex(a.seal, out + n + m, &f) == 1 &&
            static_cast<uint32_t>(n + m + f) == padded &&
            EVP_CIPHER_CTX_ctrl(a.seal, EVP_CTRL_AEAD_GET_TAG, 16, out + padded) == 1;
  return NumberOut(env, ok ? static_cast<double>(padded + 16) : -1);
}

napi_value AeadOpen(napi_env env, napi_callback_info cb) {
  napi_value info[8];
  size_t argc = 8;
  void* state = nullptr;
  if (napi_get_cb_info(env, cb, &argc, info, nullptr, &state) != napi_ok) return nullptr;
  uint8_t *key, *src, *dst;
  size_t keyLen, srcSize, dstSize;
  uint32_t lo, hi, srcOff, srcLen, dstOff;
  AeadState& a = *static_cast<AeadState*>(state);
  if (argc != 8 || !a.ok || !BufferArg(env, info[0], &key, &keyLen) || keyLen != 32 ||
      !U32Arg(env, info[1], &lo) || !U32Arg(env, info[2], &hi) || !BufferArg(env, info[3], &src, &srcSize) ||
      !U32Arg(env, info[4], &srcOff) || !U32Arg(env, info[5], &srcLen) || srcLen < 16 ||
      !BufferArg(env, info[6], &dst, &dstSize) || !U32Arg(env, info[7], &dstOff) ||
      static_cast<size_t>(srcOff) + srcLen > srcSize || static_cast<size_t>(dstOff) + (srcLen - 16) > dstSize) {
    return NumberOut(env, -1);
  }
  uint8_t nonce[12];
  WgNonce(nonce, lo, hi);
  uint32_t body = srcLen - 16;
  // The tag is copied first: src and dst may be the same buffer.
  uint8_t tag[16];
  memcpy(tag, src + srcOff + body, 16);
  int n = 0, f = 0;
  bool ok = EVP_DecryptInit_ex(a.open, nullptr, nullptr, key, nonce) == 1 &&
            EVP_DecryptUpdate(a.open, dst + dstOff, &n, src + srcOff, static_cast<int>(body)) == 1 &&
            EVP_CIPHER_CTX_ctrl(a.open, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1 &&
            EVP_DecryptFinal_ex(a.open, dst + dstOff + n, &f) == 1 &&
            static_cast<uint32_t>(n + f) == body;
  return NumberOut(env, ok ? static_cast<double>(body) : -1);
}

}  // namespace

void InitAead(Napi::Env env, Napi::Object exports) {
  AeadState* state = new AeadState();
  if (napi_add_env_cleanup_hook(env, FreeAead, state) != napi_ok) {
    delete state;
    return;
  }
  napi_value seal = nullptr, open = nullptr;
  if (napi_create_function(env, "aeadSeal", NAPI_AUTO_LENGTH, AeadSeal, state, &seal) == napi_ok) exports.Set("aeadSeal", seal);
  if (napi_create_function(env, "aeadOpen", NAPI_AUTO_LENGTH, AeadOpen, state, &open) == napi_ok) exports.Set("aeadOpen", open);
}

#else
// Without OpenSSL headers the addon has no AEAD; src/io then leaves it to node:crypto.
void InitAead(Napi::Env, Napi::Object) {}
#endif

}  // namespace lanparty
