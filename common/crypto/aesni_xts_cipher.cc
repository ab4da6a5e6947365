// AES-NI backend: the shared XTS kernel (xts_kernel.h) over SSE registers, one block each.
#include "aesni_xts_cipher.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "x86_xts_cipher.h"
#include "xts_kernel.h"

#define RBDLUKS_AESNI_TARGET __attribute__((target("aes,pclmul,sse4.1")))

namespace rbdluks {
namespace {

struct Xmm {
  using V = __m128i;
  static constexpr size_t kLanes = 1;

  RBDLUKS_AESNI_TARGET static void load(V& v, const uint8_t* p) { v = _mm_loadu_si128(reinterpret_cast<const V*>(p)); }
  RBDLUKS_AESNI_TARGET static void store(uint8_t* p, const V& v) { _mm_storeu_si128(reinterpret_cast<V*>(p), v); }
  RBDLUKS_AESNI_TARGET static void round_key(V& v, const uint8_t* p) {
    v = _mm_load_si128(reinterpret_cast<const V*>(p));
  }
  RBDLUKS_AESNI_TARGET static void xor_into(V& v, const V& a) { v = _mm_xor_si128(v, a); }
  RBDLUKS_AESNI_TARGET static void xor3_into(V& v, const V& a, const V& b) {
    v = _mm_xor_si128(v, _mm_xor_si128(a, b));
  }
  RBDLUKS_AESNI_TARGET static void aesenc(V& v, const V& k) { v = _mm_aesenc_si128(v, k); }
  RBDLUKS_AESNI_TARGET static void aesenclast(V& v, const V& k) { v = _mm_aesenclast_si128(v, k); }
  RBDLUKS_AESNI_TARGET static void aesdec(V& v, const V& k) { v = _mm_aesdec_si128(v, k); }
  RBDLUKS_AESNI_TARGET static void aesdeclast(V& v, const V& k) { v = _mm_aesdeclast_si128(v, k); }
  RBDLUKS_AESNI_TARGET static void ivs(V& v, uint64_t iv, uint64_t /*step*/) {
    v = _mm_set_epi64x(0, static_cast<int64_t>(iv));
  }
  RBDLUKS_AESNI_TARGET static void spread(V& v, const uint8_t* p) { round_key(v, p); }

  // x^128 = x^7 + x^2 + x + 1: what the bits shifted out of the top reduce to.
  template <int K>
  RBDLUKS_AESNI_TARGET static void mul_x(V& t) {
    const V poly = _mm_set_epi64x(0, 0x87);
    if constexpr (K % 8 == 0) {
      t = _mm_xor_si128(_mm_slli_si128(t, K / 8), _mm_clmulepi64_si128(_mm_srli_si128(t, 16 - K / 8), poly, 0x00));
    } else {
      // Each half shifted on its own; `over` holds what left each half, swapped: the high half's
      // overflow (to reduce) low, the low half's (to carry into the high half) high.
      const V over = _mm_shuffle_epi32(_mm_srli_epi64(t, 64 - K), 0x4e);
      const V reduced = _mm_clmulepi64_si128(over, poly, 0x00);
      t = _mm_xor_si128(_mm_xor_si128(_mm_slli_epi64(t, K), reduced), _mm_blend_epi16(_mm_setzero_si128(), over, 0xf0));
    }
  }
};

RBDLUKS_AESNI_TARGET __attribute__((flatten)) void aesni_kernel(const XtsRoundKeys& keys, const uint8_t* in,
                                                                uint8_t* out, size_t bytes, size_t sector_size,
                                                                uint64_t first_iv, bool encrypt) {
  xts_kernel::dispatch<Xmm>(keys, in, out, bytes, sector_size, first_iv, encrypt);
}

}  // namespace

std::unique_ptr<XtsCipher> make_aesni_xts_cipher(std::span<const uint8_t> key) {
  return std::make_unique<X86XtsCipher>(key, &aesni_kernel, "aesni (AES-NI)");
}

}  // namespace rbdluks

#endif
