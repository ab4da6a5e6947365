// VAES backends: the shared XTS kernel (xts_kernel.h) over YMM and ZMM registers.
#include "vaes_xts_cipher.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "x86_xts_cipher.h"
#include "xts_kernel.h"

#define RBDLUKS_VAES256_TARGET __attribute__((target("aes,pclmul,avx2,vaes,vpclmulqdq")))
#define RBDLUKS_VAES512_TARGET __attribute__((target("aes,pclmul,avx2,vaes,vpclmulqdq,avx512f,avx512vl,avx512bw")))

// GCC 12's AVX-512 intrinsics start some results from _mm512_undefined_epi32(), which its own
// -Wmaybe-uninitialized then reports once inlined (GCC bug 105593). clang has no such warning and
// rejects the name (the fuzzing build, tests/fuzz/, uses clang).
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace rbdluks {
namespace {

struct Ymm {
  using V = __m256i;
  static constexpr size_t kLanes = 2;

  RBDLUKS_VAES256_TARGET static void load(V& v, const uint8_t* p) {
    v = _mm256_loadu_si256(reinterpret_cast<const V*>(p));
  }
  RBDLUKS_VAES256_TARGET static void store(uint8_t* p, const V& v) { _mm256_storeu_si256(reinterpret_cast<V*>(p), v); }
  RBDLUKS_VAES256_TARGET static void round_key(V& v, const uint8_t* p) {
    v = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
  }
  RBDLUKS_VAES256_TARGET static void xor_into(V& v, const V& a) { v = _mm256_xor_si256(v, a); }
  RBDLUKS_VAES256_TARGET static void xor3_into(V& v, const V& a, const V& b) {
    v = _mm256_xor_si256(v, _mm256_xor_si256(a, b));
  }
  RBDLUKS_VAES256_TARGET static void aesenc(V& v, const V& k) { v = _mm256_aesenc_epi128(v, k); }
  RBDLUKS_VAES256_TARGET static void aesenclast(V& v, const V& k) { v = _mm256_aesenclast_epi128(v, k); }
  RBDLUKS_VAES256_TARGET static void aesdec(V& v, const V& k) { v = _mm256_aesdec_epi128(v, k); }
  RBDLUKS_VAES256_TARGET static void aesdeclast(V& v, const V& k) { v = _mm256_aesdeclast_epi128(v, k); }
  RBDLUKS_VAES256_TARGET static void ivs(V& v, uint64_t iv, uint64_t step) {
    v = _mm256_set_epi64x(0, static_cast<int64_t>(iv + step), 0, static_cast<int64_t>(iv));
  }
  RBDLUKS_VAES256_TARGET static void spread(V& v, const uint8_t* p) {
    round_key(v, p);
    v = mul_x_by(v, _mm256_set_epi64x(1, 1, 0, 0), _mm256_set_epi64x(63, 63, 64, 64));
  }

  template <int K>
  RBDLUKS_VAES256_TARGET static void mul_x(V& t) {
    if constexpr (K % 8 == 0) {
      t = _mm256_xor_si256(_mm256_bslli_epi128(t, K / 8),
                           _mm256_clmulepi64_epi128(_mm256_bsrli_epi128(t, 16 - K / 8), poly(), 0x00));
    } else {
      t = mul_x_by(t, _mm256_set1_epi64x(K), _mm256_set1_epi64x(64 - K));
    }
  }

 private:
  // x^128 = x^7 + x^2 + x + 1: what the bits shifted out of the top reduce to.
  RBDLUKS_VAES256_TARGET static V poly() { return _mm256_set_epi64x(0, 0x87, 0, 0x87); }

  // Each lane times x^left, where the 64-bit counts are left and right = 64 - left per lane (below
  // 57). Each half is shifted on its own; `over` holds what left each half, swapped: the high half's
  // overflow (to reduce) low, the low half's (to carry into the high half) high.
  RBDLUKS_VAES256_TARGET static V mul_x_by(V t, V left, V right) {
    const V over = _mm256_shuffle_epi32(_mm256_srlv_epi64(t, right), 0x4e);
    const V reduced = _mm256_clmulepi64_epi128(over, poly(), 0x00);
    return _mm256_xor_si256(_mm256_xor_si256(_mm256_sllv_epi64(t, left), reduced),
                            _mm256_blend_epi32(_mm256_setzero_si256(), over, 0xcc));
  }
};

struct Zmm {
  using V = __m512i;
  static constexpr size_t kLanes = 4;

  RBDLUKS_VAES512_TARGET static void load(V& v, const uint8_t* p) { v = _mm512_loadu_si512(p); }
  RBDLUKS_VAES512_TARGET static void store(uint8_t* p, const V& v) { _mm512_storeu_si512(p, v); }
  RBDLUKS_VAES512_TARGET static void round_key(V& v, const uint8_t* p) {
    v = _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
  }
  RBDLUKS_VAES512_TARGET static void xor_into(V& v, const V& a) { v = _mm512_xor_si512(v, a); }
  RBDLUKS_VAES512_TARGET static void xor3_into(V& v, const V& a, const V& b) {
    v = _mm512_ternarylogic_epi64(v, a, b, 0x96);
  }
  RBDLUKS_VAES512_TARGET static void aesenc(V& v, const V& k) { v = _mm512_aesenc_epi128(v, k); }
  RBDLUKS_VAES512_TARGET static void aesenclast(V& v, const V& k) { v = _mm512_aesenclast_epi128(v, k); }
  RBDLUKS_VAES512_TARGET static void aesdec(V& v, const V& k) { v = _mm512_aesdec_epi128(v, k); }
  RBDLUKS_VAES512_TARGET static void aesdeclast(V& v, const V& k) { v = _mm512_aesdeclast_epi128(v, k); }
  RBDLUKS_VAES512_TARGET static void ivs(V& v, uint64_t iv, uint64_t step) {
    v = _mm512_set_epi64(0, static_cast<int64_t>(iv + 3 * step), 0, static_cast<int64_t>(iv + 2 * step), 0,
                         static_cast<int64_t>(iv + step), 0, static_cast<int64_t>(iv));
  }
  RBDLUKS_VAES512_TARGET static void spread(V& v, const uint8_t* p) {
    round_key(v, p);
    v = mul_x_by(v, _mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0), _mm512_set_epi64(61, 61, 62, 62, 63, 63, 64, 64));
  }

  template <int K>
  RBDLUKS_VAES512_TARGET static void mul_x(V& t) {
    if constexpr (K % 8 == 0) {
      t = _mm512_xor_si512(_mm512_bslli_epi128(t, K / 8),
                           _mm512_clmulepi64_epi128(_mm512_bsrli_epi128(t, 16 - K / 8), poly(), 0x00));
    } else {
      t = mul_x_by(t, _mm512_set1_epi64(K), _mm512_set1_epi64(64 - K));
    }
  }

 private:
  RBDLUKS_VAES512_TARGET static V poly() { return _mm512_set_epi64(0, 0x87, 0, 0x87, 0, 0x87, 0, 0x87); }

  // As Ymm::mul_x_by; 0x96 is the three-way XOR.
  RBDLUKS_VAES512_TARGET static V mul_x_by(V t, V left, V right) {
    const V over = _mm512_shuffle_epi32(_mm512_srlv_epi64(t, right), _MM_PERM_BADC);
    const V reduced = _mm512_clmulepi64_epi128(over, poly(), 0x00);
    return _mm512_ternarylogic_epi64(_mm512_sllv_epi64(t, left), reduced, _mm512_maskz_mov_epi64(0xaa, over), 0x96);
  }
};

RBDLUKS_VAES256_TARGET __attribute__((flatten)) void vaes256_kernel(const XtsRoundKeys& keys, const uint8_t* in,
                                                                    uint8_t* out, size_t bytes, size_t sector_size,
                                                                    uint64_t first_iv, bool encrypt) {
  xts_kernel::dispatch<Ymm>(keys, in, out, bytes, sector_size, first_iv, encrypt);
}

RBDLUKS_VAES512_TARGET __attribute__((flatten)) void vaes512_kernel(const XtsRoundKeys& keys, const uint8_t* in,
                                                                    uint8_t* out, size_t bytes, size_t sector_size,
                                                                    uint64_t first_iv, bool encrypt) {
  xts_kernel::dispatch<Zmm>(keys, in, out, bytes, sector_size, first_iv, encrypt);
}

}  // namespace

std::unique_ptr<XtsCipher> make_vaes256_xts_cipher(std::span<const uint8_t> key) {
  return std::make_unique<X86XtsCipher>(key, &vaes256_kernel, "vaes256 (VAES+VPCLMULQDQ, AVX2 width)");
}

std::unique_ptr<XtsCipher> make_vaes512_xts_cipher(std::span<const uint8_t> key) {
  return std::make_unique<X86XtsCipher>(key, &vaes512_kernel, "vaes512 (VAES+VPCLMULQDQ, AVX-512)");
}

}  // namespace rbdluks

#endif
