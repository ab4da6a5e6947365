// Key derivation: PBKDF2-HMAC on Crypto++, argon2i/argon2id (version 0x13, as LUKS2 uses) on libargon2.
#include "kdf.h"

#include <argon2.h>
#include <crypto++/cryptlib.h>

#include <string>

#include "hash_algorithms.h"
#include "kdf_memory_budget.h"

namespace rbdluks {
namespace {

// cryptsetup's ceiling for argon2 memory. It also bounds what a corrupt header can make us allocate.
constexpr uint32_t kArgon2MaxMemoryKib = 4 * 1024 * 1024;

// libargon2 copies from these pointers even for zero lengths, so never hand it nullptr.
const uint8_t* nonnull(std::span<const uint8_t> bytes) {
  static const uint8_t empty = 0;
  return bytes.empty() ? &empty : bytes.data();
}

Status derive_pbkdf2(const KdfParams& params, std::span<const uint8_t> passphrase, std::span<const uint8_t> salt,
                     std::span<uint8_t> out) {
  auto algorithm = find_hash_algorithm(params.hash);
  if (!algorithm) return std::move(algorithm).error().context("pbkdf2");
  // Parameters come from a header by the time they reach us; choose_kdf_params never yields these.
  if (params.iterations == 0) return Error(Errc::bad_header, "pbkdf2: iteration count is 0");
  if (out.empty()) return Error(Errc::failure, "pbkdf2: empty output");
  try {
    (*algorithm)->pbkdf2(passphrase, salt, params.iterations, out);
  } catch (const CryptoPP::Exception& e) {
    return Error(Errc::failure, std::string("pbkdf2-") + params.hash + ": " + e.what());
  }
  return {};
}

Status derive_argon2(const KdfParams& params, std::span<const uint8_t> passphrase, std::span<const uint8_t> salt,
                     std::span<uint8_t> out) {
  const std::string what = std::string(kdf_name(params.type)) + " (time " + std::to_string(params.iterations) +
                           ", memory " + std::to_string(params.memory_kib) + " KiB, threads " +
                           std::to_string(params.parallel) + ")";
  if (params.memory_kib > kArgon2MaxMemoryKib) {
    return Error(Errc::unsupported, what + ": memory is above the 4 GiB limit");
  }
  const argon2_type type = params.type == KdfType::argon2i ? Argon2_i : Argon2_id;
  const KdfMemoryBudget::Lease memory = KdfMemoryBudget::process().acquire(uint64_t{params.memory_kib} << 10);
  const int rc =
      argon2_hash(params.iterations, params.memory_kib, params.parallel, nonnull(passphrase), passphrase.size(),
                  nonnull(salt), salt.size(), out.data(), out.size(), nullptr, 0, type, ARGON2_VERSION_13);
  switch (rc) {
    case ARGON2_OK:
      return {};
    case ARGON2_MEMORY_ALLOCATION_ERROR:
    case ARGON2_THREAD_FAIL:
      return Error(Errc::failure, what + ": " + argon2_error_message(rc));
    default:  // every other code is a parameter out of argon2's range
      return Error(Errc::bad_header, what + ": " + argon2_error_message(rc));
  }
}

}  // namespace

std::string_view kdf_name(KdfType type) {
  switch (type) {
    case KdfType::pbkdf2:
      return "pbkdf2";
    case KdfType::argon2i:
      return "argon2i";
    case KdfType::argon2id:
      return "argon2id";
  }
  return "unknown";
}

Result<KdfType> parse_kdf_name(std::string_view name) {
  for (const KdfType type : {KdfType::pbkdf2, KdfType::argon2i, KdfType::argon2id}) {
    if (kdf_name(type) == name) return type;
  }
  return Error(Errc::unsupported, "kdf " + std::string(name) + " is not supported (pbkdf2, argon2i, argon2id)");
}

Status derive_key(const KdfParams& params, std::span<const uint8_t> passphrase, std::span<const uint8_t> salt,
                  std::span<uint8_t> out) {
  if (params.type == KdfType::pbkdf2) return derive_pbkdf2(params, passphrase, salt, out);
  return derive_argon2(params, passphrase, salt, out);
}

}  // namespace rbdluks
