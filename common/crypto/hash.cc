// Hash functions by LUKS name, on Crypto++ (the table is in hash_algorithms.cc).
#include "hash.h"

#include <crypto++/cryptlib.h>

#include <string>

#include "hash_algorithms.h"

namespace rbdluks {

Result<size_t> hash_size(std::string_view name) {
  RL_ASSIGN(const HashAlgorithm* algorithm, find_hash_algorithm(name));
  return algorithm->digest_size;
}

Status hash_parts(std::string_view name, std::span<const std::span<const uint8_t>> parts, std::span<uint8_t> out) {
  RL_ASSIGN(const HashAlgorithm* algorithm, find_hash_algorithm(name));
  if (out.size() != algorithm->digest_size) {
    return Error(Errc::failure, "hash " + std::string(name) + ": output buffer has " + std::to_string(out.size()) +
                                    " bytes, digest has " + std::to_string(algorithm->digest_size));
  }
  try {
    algorithm->digest(parts, out);
  } catch (const CryptoPP::Exception& e) {
    return Error(Errc::failure, "hash " + std::string(name) + ": " + e.what());
  }
  return {};
}

}  // namespace rbdluks
