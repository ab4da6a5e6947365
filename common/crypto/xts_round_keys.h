// XtsRoundKeys: the AES round keys of an XTS key, expanded with AES-NI, for the x86-64 XTS kernels
// (AES-NI and VAES). The first half of the key encrypts the data, the second the tweaks.
//
// The schedules are secrets, so they live in one SecureBuffer (16-byte aligned, locked, zeroed when
// freed). Kernels read them from there on every use rather than copying them elsewhere in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "secure_buffer.h"

namespace rbdluks {

class XtsRoundKeys {
 public:
  // key is 32 or 64 bytes (checked by make_xts_cipher). Only call on a CPU with AES-NI.
  explicit XtsRoundKeys(std::span<const uint8_t> key);

  int rounds() const { return rounds_; }  // 10 (AES-128) or 14 (AES-256)

  // rounds() + 1 round keys of 16 bytes each, 16-byte aligned, in the order the rounds use them.
  const uint8_t* data_encrypt() const { return schedule(0); }
  // For AESDEC: the encryption keys reversed, the middle ones through InvMixColumns.
  const uint8_t* data_decrypt() const { return schedule(1); }
  const uint8_t* tweak_encrypt() const { return schedule(2); }

 private:
  static constexpr size_t kScheduleBytes = size_t{15} * 16;
  const uint8_t* schedule(size_t n) const { return storage_.data() + n * kScheduleBytes; }

  SecureBuffer storage_;
  int rounds_;
};

}  // namespace rbdluks
