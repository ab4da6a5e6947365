// The hash table behind hash.cc and kdf.cc, instantiating Crypto++'s templates once per hash.
#include "hash_algorithms.h"

#include <crypto++/pwdbased.h>
#include <crypto++/ripemd.h>
#include <crypto++/sha.h>
#include <crypto++/whrlpool.h>

#include <string>

namespace rbdluks {
namespace {

// Crypto++ copies from these pointers even for zero lengths, so never hand it nullptr.
const uint8_t* nonnull(std::span<const uint8_t> bytes) {
  static const uint8_t empty = 0;
  return bytes.empty() ? &empty : bytes.data();
}

template <typename H>
void digest(std::span<const std::span<const uint8_t>> parts, std::span<uint8_t> out) {
  H hash;
  for (const std::span<const uint8_t> part : parts) hash.Update(part.data(), part.size());
  hash.Final(out.data());
}

template <typename H>
void pbkdf2_hmac(std::span<const uint8_t> passphrase, std::span<const uint8_t> salt, uint32_t iterations,
                 std::span<uint8_t> out) {
  CryptoPP::PKCS5_PBKDF2_HMAC<H>().DeriveKey(out.data(), out.size(), 0, nonnull(passphrase), passphrase.size(),
                                             nonnull(salt), salt.size(), iterations);
}

template <typename H>
constexpr HashAlgorithm algorithm(std::string_view name) {
  return {name, H::DIGESTSIZE, digest<H>, pbkdf2_hmac<H>};
}

// The names cryptsetup accepts for LUKS hashes that Crypto++ provides.
constexpr HashAlgorithm kAlgorithms[] = {
    algorithm<CryptoPP::SHA1>("sha1"),           algorithm<CryptoPP::SHA224>("sha224"),
    algorithm<CryptoPP::SHA256>("sha256"),       algorithm<CryptoPP::SHA384>("sha384"),
    algorithm<CryptoPP::SHA512>("sha512"),       algorithm<CryptoPP::RIPEMD160>("ripemd160"),
    algorithm<CryptoPP::Whirlpool>("whirlpool"),
};

}  // namespace

Result<const HashAlgorithm*> find_hash_algorithm(std::string_view name) {
  for (const HashAlgorithm& algorithm : kAlgorithms) {
    if (algorithm.name == name) return &algorithm;
  }
  std::string known;
  for (const HashAlgorithm& algorithm : kAlgorithms) known += (known.empty() ? "" : ", ") + std::string(algorithm.name);
  return Error(Errc::unsupported, "hash " + std::string(name) + " is not supported (" + known + ")");
}

}  // namespace rbdluks
