// The AES-XTS kernel of the x86-64 backends, written once over a register width ("Ops": SSE for
// AES-NI, YMM and ZMM for VAES). Include it only from a backend's .cc file.
//
// How it runs: the IVs of up to 8 registers' worth of sectors are encrypted with the tweak key
// together, then each sector is processed 8 registers at a time (8, 16 or 32 blocks). The tweaks of
// those blocks stay in 8 registers and advance by alpha^(8 * lanes) per step, a byte shift plus one
// carry-less multiply for the reduction; nothing goes through tables, so timing does not depend on
// keys or data.
//
// Why templates without target attributes: GCC refuses to inline a function built for more
// instruction sets into one built for fewer, so only the Ops members carry the target attribute,
// and the backend's entry point (built for the same set and marked `flatten`) pulls the whole
// kernel into itself when optimising. Ops members take vectors by reference, never by value: a
// function built without AVX passes vector values differently from one built with it, so when they
// are not inlined (-O0) by-value calls would silently corrupt data.
//
// An Ops type provides, all static and compiled for its instruction set, modifying v in place:
//   V, kLanes                    the register type and how many 16-byte blocks it holds
//   load(v, p), store(p, v)      unaligned memory access
//   round_key(v, p)              the 16-byte round key at p (16-byte aligned) in every lane
//   xor_into(v, a)               v ^= a
//   xor3_into(v, a, b)           v ^= a ^ b
//   aesenc, aesenclast, aesdec, aesdeclast (v, key)
//   ivs(v, iv, step)             lane l = the tweak block of IV (iv + l * step) mod 2^64
//   spread(v, p)                 lane l = T * alpha^l, for the 16-byte block T at p (16-aligned)
//   mul_x<K>(v)                  every lane times alpha^K in GF(2^128), 0 < K <= 32
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "secure_buffer.h"
#include "xts_round_keys.h"

namespace rbdluks::xts_kernel {

// Registers processed together: enough independent AES rounds in flight to cover the instruction's
// latency on both AES units. With 16 vector registers (SSE, AVX2) the compiler spills a few tweaks;
// X86XtsCipher wipes the stack after each call.
constexpr size_t kRegs = 8;

// How far ahead of the block being encrypted its input is prefetched. The data path's input often
// comes cold from DRAM, and the hardware prefetchers stop at 4 KiB page boundaries, so each new page
// would start with a stall; two pages ahead measured best (cipher_bench's cold-source runs:
// vaes512 20.3-20.9 GB/s against 16.6-18.9 without, in-cache speed unchanged). Prefetches never
// fault, so running past the end of the input is harmless.
constexpr size_t kPrefetchBytes = 8192;

// f(integral_constant<0>) ... f(integral_constant<N-1>): unrolled, with the index usable as a
// template argument.
template <size_t N, typename F>
void unrolled(F&& f) {
  [&]<size_t... i>(std::index_sequence<i...>) { (f(std::integral_constant<size_t, i>{}), ...); }
  (std::make_index_sequence<N>{});
}

// Where the rounds find their keys. The data schedule is broadcast into registers once per call and
// kept there across the whole run of sectors (where there are too few registers the compiler spills
// some, and X86XtsCipher wipes the stack); the tweak schedule, used once per batch of sectors, is
// read from memory as needed, which keeps the kernel's frame small.
template <class Ops, int kRounds>
struct KeysInRegisters {
  typename Ops::V k[kRounds + 1];
  explicit KeysInRegisters(const uint8_t* keys) {
    for (int round = 0; round <= kRounds; ++round) Ops::round_key(k[round], keys + size_t{16} * round);
  }
  void get(typename Ops::V& v, size_t round) const { v = k[round]; }
};

template <class Ops>
struct KeysInMemory {
  const uint8_t* keys;
  void get(typename Ops::V& v, size_t round) const { Ops::round_key(v, keys + size_t{16} * round); }
};

// Rounds 1 .. kRounds-1 of AES (or its inverse) on N registers of blocks.
template <class Ops, int kRounds, bool kEncrypt, size_t N, class Keys>
void middle_rounds(typename Ops::V* x, const Keys& keys) {
  unrolled<kRounds - 1>([&](auto round) {
    typename Ops::V key;
    keys.get(key, round + 1);
    unrolled<N>([&](auto i) {
      if constexpr (kEncrypt) {
        Ops::aesenc(x[i], key);
      } else {
        Ops::aesdec(x[i], key);
      }
    });
  });
}

template <class Ops, bool kEncrypt>
void last_round(typename Ops::V& x, const typename Ops::V& key) {
  if constexpr (kEncrypt) {
    Ops::aesenclast(x, key);
  } else {
    Ops::aesdeclast(x, key);
  }
}

// Encrypts N registers of blocks in place.
template <class Ops, int kRounds, size_t N, class Keys>
void aes_encrypt(typename Ops::V* x, const Keys& keys) {
  typename Ops::V key;
  keys.get(key, 0);
  unrolled<N>([&](auto i) { Ops::xor_into(x[i], key); });
  middle_rounds<Ops, kRounds, true, N>(x, keys);
  keys.get(key, kRounds);
  unrolled<N>([&](auto i) { last_round<Ops, true>(x[i], key); });
}

// One step of XTS on kRegs registers: out = AES(in ^ t) ^ t. Both tweak XORs are folded into AES's
// own key additions (the first is one three-way XOR where the ISA has it; the last round ends by
// adding its key, so adding key ^ t there adds t too), which leaves the vector units fewer
// instructions to share with the AES ones. Together with the schedule in registers: vaes512 AES-256
// at 13.7 / 13.6 GB/s (enc/dec) on Zen 4, against 11.4 / 12.6 with each round's key loaded and the
// tweaks XORed separately.
template <class Ops, int kRounds, bool kEncrypt>
void xts_step(const KeysInRegisters<Ops, kRounds>& keys, const typename Ops::V* t, const uint8_t* from, uint8_t* to) {
  using V = typename Ops::V;
  V x[kRegs];
  unrolled<kRegs>([&](auto r) {
    Ops::load(x[r], from + r * sizeof(V));
    Ops::xor3_into(x[r], t[r], keys.k[0]);
  });
  middle_rounds<Ops, kRounds, kEncrypt, kRegs>(x, keys);
  unrolled<kRegs>([&](auto r) {
    V last = t[r];
    Ops::xor_into(last, keys.k[kRounds]);
    last_round<Ops, kEncrypt>(x[r], last);
    Ops::store(to + r * sizeof(V), x[r]);
  });
}

// Writes E_k2(IV) of `count` consecutive sectors, 16 bytes each, to out.
template <class Ops, int kRounds>
void first_tweaks(const XtsRoundKeys& keys, size_t count, uint64_t first_iv, uint64_t iv_step, uint8_t* out) {
  using V = typename Ops::V;
  const size_t regs = (count + Ops::kLanes - 1) / Ops::kLanes;
  const KeysInMemory<Ops> tweak_keys{keys.tweak_encrypt()};
  V x[kRegs];
  if (regs == kRegs) {
    unrolled<kRegs>([&](auto r) { Ops::ivs(x[r], first_iv + r * Ops::kLanes * iv_step, iv_step); });
    aes_encrypt<Ops, kRounds, kRegs>(x, tweak_keys);
    unrolled<kRegs>([&](auto r) { Ops::store(out + r * sizeof(V), x[r]); });
    return;
  }
  for (size_t r = 0; r < regs; ++r) {
    Ops::ivs(x[0], first_iv + r * Ops::kLanes * iv_step, iv_step);
    aes_encrypt<Ops, kRounds, 1>(x, tweak_keys);
    Ops::store(out + r * sizeof(V), x[0]);
  }
}

template <class Ops, int kRounds, bool kEncrypt>
void run(const XtsRoundKeys& keys, const uint8_t* in, uint8_t* out, size_t bytes, size_t sector_size,
         uint64_t first_iv) {
  using V = typename Ops::V;
  constexpr size_t kStep = kRegs * sizeof(V);  // bytes per step; divides every sector size
  constexpr size_t kBatch = kRegs * Ops::kLanes;
  const uint64_t iv_step = sector_size / 512;
  const size_t sectors = bytes / sector_size;
  // Tweaks are key-derived, so they are wiped like the portable backend wipes its own.
  alignas(64) uint8_t tweaks[kBatch * 16];
  const KeysInRegisters<Ops, kRounds> data_keys(kEncrypt ? keys.data_encrypt() : keys.data_decrypt());
  for (size_t batch = 0; batch < sectors; batch += kBatch) {
    const size_t count = std::min(kBatch, sectors - batch);
    first_tweaks<Ops, kRounds>(keys, count, first_iv + batch * iv_step, iv_step, tweaks);
    for (size_t s = 0; s < count; ++s) {
      const size_t sector = (batch + s) * sector_size;
      V t[kRegs];
      Ops::spread(t[0], tweaks + 16 * s);
      unrolled<kRegs - 1>([&](auto r) {
        t[r + 1] = t[0];
        Ops::template mul_x<(r + 1) * Ops::kLanes>(t[r + 1]);
      });
      for (size_t offset = 0;;) {
        const uint8_t* const from = in + sector + offset;
        uint8_t* const to = out + sector + offset;
        for (size_t line = 0; line < kStep; line += 64) __builtin_prefetch(from + kPrefetchBytes + line, 0, 3);
        xts_step<Ops, kRounds, kEncrypt>(data_keys, t, from, to);
        offset += kStep;
        if (offset == sector_size) break;
        unrolled<kRegs>([&](auto r) { Ops::template mul_x<kRegs * Ops::kLanes>(t[r]); });
      }
    }
  }
  secure_zero(tweaks, sizeof(tweaks));
}

// The four kernels of one width: AES-128 or AES-256, encrypting or decrypting.
template <class Ops>
void dispatch(const XtsRoundKeys& keys, const uint8_t* in, uint8_t* out, size_t bytes, size_t sector_size,
              uint64_t first_iv, bool encrypt) {
  if (keys.rounds() == 14) {
    encrypt ? run<Ops, 14, true>(keys, in, out, bytes, sector_size, first_iv)
            : run<Ops, 14, false>(keys, in, out, bytes, sector_size, first_iv);
  } else {
    encrypt ? run<Ops, 10, true>(keys, in, out, bytes, sector_size, first_iv)
            : run<Ops, 10, false>(keys, in, out, bytes, sector_size, first_iv);
  }
}

}  // namespace rbdluks::xts_kernel
