// Key derivation for keyslots and digests: PBKDF2 (sha1/sha256/sha512 ...), argon2i and argon2id,
// and cryptsetup-style benchmarking that picks the cost for a wanted unlock time.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "result.h"

namespace rbdluks {

enum class KdfType { pbkdf2, argon2i, argon2id };

std::string_view kdf_name(KdfType type);  // "pbkdf2", "argon2i", "argon2id"
Result<KdfType> parse_kdf_name(std::string_view name);

// The stored cost of one KDF instance (a keyslot's or a digest's).
struct KdfParams {
  KdfType type = KdfType::argon2id;
  std::string hash = "sha256";  // pbkdf2 only
  uint32_t iterations = 0;      // pbkdf2 iterations, or argon2 "time"
  uint32_t memory_kib = 0;      // argon2 only
  uint32_t parallel = 0;        // argon2 only ("cpus")
};

Status derive_key(const KdfParams& params, std::span<const uint8_t> passphrase, std::span<const uint8_t> salt,
                  std::span<uint8_t> out);

// What the operator asked for; unset fields take cryptsetup's defaults.
struct KdfRequest {
  KdfType type = KdfType::argon2id;
  std::string hash = "sha256";
  uint32_t iter_time_ms = 2000;              // cryptsetup's default unlock time
  std::optional<uint32_t> force_iterations;  // skip benchmarking
  uint32_t max_memory_kib = 1048576;         // argon2 memory cap (1 GiB)
  uint32_t parallel = 4;                     // argon2 threads, capped by online CPUs
};

// Chooses the cost like cryptsetup's crypt_benchmark_pbkdf: pbkdf2 iterations (minimum 1000) or
// argon2 time/memory (time minimum 4, memory scaled down before time) so that one derivation of
// key_size bytes takes about iter_time_ms. With force_iterations set, no benchmark runs.
Result<KdfParams> choose_kdf_params(const KdfRequest& request, size_t key_size);

}  // namespace rbdluks
