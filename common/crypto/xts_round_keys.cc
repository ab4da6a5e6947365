// AES key expansion with AESKEYGENASSIST (constant time, unlike table-driven expansion), following
// Intel's AES-NI white paper.
#include "xts_round_keys.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define RBDLUKS_AESNI_TARGET __attribute__((target("aes,sse4.1")))

namespace rbdluks {
namespace {

// One step of the schedule: key XOR its three left shifts by a word, XOR the assist word.
RBDLUKS_AESNI_TARGET __m128i mix(__m128i key, __m128i assist) {
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
  return _mm_xor_si128(key, assist);
}

// The round constant must be an immediate, hence a template.
template <int kRcon>
RBDLUKS_AESNI_TARGET __m128i next_128(__m128i key) {
  return mix(key, _mm_shuffle_epi32(_mm_aeskeygenassist_si128(key, kRcon), 0xff));
}

RBDLUKS_AESNI_TARGET void expand_128(const uint8_t* key, __m128i* rk) {
  rk[0] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key));
  rk[1] = next_128<0x01>(rk[0]);
  rk[2] = next_128<0x02>(rk[1]);
  rk[3] = next_128<0x04>(rk[2]);
  rk[4] = next_128<0x08>(rk[3]);
  rk[5] = next_128<0x10>(rk[4]);
  rk[6] = next_128<0x20>(rk[5]);
  rk[7] = next_128<0x40>(rk[6]);
  rk[8] = next_128<0x80>(rk[7]);
  rk[9] = next_128<0x1b>(rk[8]);
  rk[10] = next_128<0x36>(rk[9]);
}

// AES-256 alternates two kinds of step: even round keys take RotWord+SubWord+rcon of the previous
// key's last word, odd ones SubWord only.
template <int kRcon>
RBDLUKS_AESNI_TARGET void next_256(__m128i* rk) {
  rk[0] = mix(rk[-2], _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[-1], kRcon), 0xff));
  if constexpr (kRcon != 0x40) rk[1] = mix(rk[-1], _mm_shuffle_epi32(_mm_aeskeygenassist_si128(rk[0], 0), 0xaa));
}

RBDLUKS_AESNI_TARGET void expand_256(const uint8_t* key, __m128i* rk) {
  rk[0] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key));
  rk[1] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key + 16));
  next_256<0x01>(rk + 2);
  next_256<0x02>(rk + 4);
  next_256<0x04>(rk + 6);
  next_256<0x08>(rk + 8);
  next_256<0x10>(rk + 10);
  next_256<0x20>(rk + 12);
  next_256<0x40>(rk + 14);
}

RBDLUKS_AESNI_TARGET void expand(const uint8_t* key, int rounds, __m128i* rk) {
  if (rounds == 10) {
    expand_128(key, rk);
  } else {
    expand_256(key, rk);
  }
}

RBDLUKS_AESNI_TARGET void invert(const __m128i* enc, int rounds, __m128i* dec) {
  dec[0] = enc[rounds];
  for (int i = 1; i < rounds; ++i) dec[i] = _mm_aesimc_si128(enc[rounds - i]);
  dec[rounds] = enc[0];
}

}  // namespace

XtsRoundKeys::XtsRoundKeys(std::span<const uint8_t> key)
    : storage_(3 * kScheduleBytes), rounds_(key.size() == 64 ? 14 : 10) {
  const size_t half = key.size() / 2;
  auto* data_enc = reinterpret_cast<__m128i*>(storage_.data());
  auto* data_dec = reinterpret_cast<__m128i*>(storage_.data() + kScheduleBytes);
  auto* tweak_enc = reinterpret_cast<__m128i*>(storage_.data() + 2 * kScheduleBytes);
  expand(key.data(), rounds_, data_enc);
  invert(data_enc, rounds_, data_dec);
  expand(key.data() + half, rounds_, tweak_enc);
}

}  // namespace rbdluks

#endif
