// Hash functions by LUKS name, on Crypto++.
#include "hash.h"

#include <crypto++/cryptlib.h>
#include <crypto++/ripemd.h>
#include <crypto++/sha.h>

#include <memory>
#include <string>

namespace rbdluks {
namespace {

template <typename H>
std::unique_ptr<CryptoPP::HashTransformation> make() {
  return std::make_unique<H>();
}

struct HashEntry {
  std::string_view name;
  size_t size;
  std::unique_ptr<CryptoPP::HashTransformation> (*create)();
};

// The names cryptsetup accepts for LUKS hashes that Crypto++ provides.
constexpr HashEntry kHashes[] = {
    {"sha1", CryptoPP::SHA1::DIGESTSIZE, make<CryptoPP::SHA1>},
    {"sha224", CryptoPP::SHA224::DIGESTSIZE, make<CryptoPP::SHA224>},
    {"sha256", CryptoPP::SHA256::DIGESTSIZE, make<CryptoPP::SHA256>},
    {"sha384", CryptoPP::SHA384::DIGESTSIZE, make<CryptoPP::SHA384>},
    {"sha512", CryptoPP::SHA512::DIGESTSIZE, make<CryptoPP::SHA512>},
    {"ripemd160", CryptoPP::RIPEMD160::DIGESTSIZE, make<CryptoPP::RIPEMD160>},
};

Result<const HashEntry*> find_hash(std::string_view name) {
  for (const HashEntry& entry : kHashes) {
    if (entry.name == name) return &entry;
  }
  return Error(Errc::unsupported,
               "hash " + std::string(name) + " is not supported (sha1, sha224, sha256, sha384, sha512, ripemd160)");
}

}  // namespace

Result<size_t> hash_size(std::string_view name) {
  RL_ASSIGN(const HashEntry* entry, find_hash(name));
  return entry->size;
}

Status hash_parts(std::string_view name, std::span<const std::span<const uint8_t>> parts, std::span<uint8_t> out) {
  RL_ASSIGN(const HashEntry* entry, find_hash(name));
  if (out.size() != entry->size) {
    return Error(Errc::failure, "hash " + std::string(name) + ": output buffer has " + std::to_string(out.size()) +
                                    " bytes, digest has " + std::to_string(entry->size));
  }
  try {
    const std::unique_ptr<CryptoPP::HashTransformation> hash = entry->create();
    for (const std::span<const uint8_t> part : parts) hash->Update(part.data(), part.size());
    hash->Final(out.data());
  } catch (const CryptoPP::Exception& e) {
    return Error(Errc::failure, "hash " + std::string(name) + ": " + e.what());
  }
  return {};
}

}  // namespace rbdluks
