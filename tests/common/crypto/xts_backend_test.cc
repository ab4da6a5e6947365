// Every XTS backend this CPU supports against an independent reference, Crypto++'s XTS_Mode<AES>
// with one data unit per sector: random keys (both sizes), tweaks (including runs that wrap past
// 2^64), sector sizes, run lengths around the kernels' batch sizes, and unaligned buffers, in place
// and from one buffer into another (differently aligned). Also the backend list, forced backends and
// the RBD_LUKS_CIPHER_BACKEND override.
#include <crypto++/aes.h>
#include <crypto++/xts.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "xts_cipher.h"

namespace rbdluks {
namespace {

constexpr size_t kSectorSizes[] = {512, 1024, 2048, 4096};

// The reference: each sector is one XTS data unit with tweak (first_iv + i * sector_size / 512)
// mod 2^64, little-endian in 16 bytes.
std::vector<uint8_t> reference(const std::vector<uint8_t>& key, std::span<const uint8_t> in, size_t sector_size,
                               uint64_t first_iv, bool encrypt) {
  CryptoPP::XTS_Mode<CryptoPP::AES>::Encryption enc;
  CryptoPP::XTS_Mode<CryptoPP::AES>::Decryption dec;
  uint8_t tweak[16] = {};
  enc.SetKeyWithIV(key.data(), key.size(), tweak, sizeof(tweak));
  dec.SetKeyWithIV(key.data(), key.size(), tweak, sizeof(tweak));
  CryptoPP::XTS_ModeBase& mode = encrypt ? static_cast<CryptoPP::XTS_ModeBase&>(enc) : dec;
  std::vector<uint8_t> out(in.size());
  for (size_t offset = 0; offset < in.size(); offset += sector_size) {
    const uint64_t iv = first_iv + offset / 512;
    for (int b = 0; b < 8; ++b) tweak[b] = static_cast<uint8_t>(iv >> (8 * b));
    mode.Resynchronize(tweak, sizeof(tweak));
    mode.ProcessData(out.data() + offset, in.data() + offset, sector_size);
  }
  return out;
}

class XtsBackend : public ::testing::TestWithParam<CipherBackend> {
 protected:
  std::unique_ptr<XtsCipher> cipher(const std::vector<uint8_t>& key) {
    auto made = make_xts_cipher(key, GetParam());
    EXPECT_TRUE(made.ok()) << (made.ok() ? "" : made.error().message());
    return made.ok() ? std::move(made).value() : nullptr;
  }

  // Encrypts and decrypts `sectors` sectors at `misalign` bytes past a 64-byte boundary, in place,
  // and compares both directions with the reference.
  void check(const std::vector<uint8_t>& key, size_t sector_size, size_t sectors, uint64_t first_iv, size_t misalign,
             std::mt19937_64& rng) {
    SCOPED_TRACE("key " + std::to_string(key.size() * 8) + " bits, sector " + std::to_string(sector_size) + " x " +
                 std::to_string(sectors) + ", iv " + std::to_string(first_iv) + ", misalign " +
                 std::to_string(misalign));
    const auto xts = cipher(key);
    ASSERT_TRUE(xts);
    const size_t size = sector_size * sectors;
    std::vector<uint8_t> plain(size);
    for (auto& b : plain) b = static_cast<uint8_t>(rng());
    std::vector<uint8_t> storage(size + 128);
    const auto base = reinterpret_cast<uintptr_t>(storage.data());
    const std::span<uint8_t> buffer(storage.data() + ((64 - base % 64) % 64) + misalign, size);

    std::copy(plain.begin(), plain.end(), buffer.begin());
    xts->encrypt(buffer, sector_size, first_iv);
    const std::vector<uint8_t> expected = reference(key, plain, sector_size, first_iv, true);
    ASSERT_TRUE(std::equal(buffer.begin(), buffer.end(), expected.begin())) << "encryption differs";
    xts->decrypt(buffer, sector_size, first_iv);
    ASSERT_TRUE(std::equal(buffer.begin(), buffer.end(), plain.begin())) << "decryption differs";

    // Decrypting data that was never encrypted, so a consistent mistake in both directions shows.
    std::copy(plain.begin(), plain.end(), buffer.begin());
    xts->decrypt(buffer, sector_size, first_iv);
    const std::vector<uint8_t> expected_plain = reference(key, plain, sector_size, first_iv, false);
    ASSERT_TRUE(std::equal(buffer.begin(), buffer.end(), expected_plain.begin())) << "decryption differs";

    // From one buffer into another with its own alignment; the input stays as it was.
    std::vector<uint8_t> out_storage(size + 128);
    const auto out_base = reinterpret_cast<uintptr_t>(out_storage.data());
    const std::span<uint8_t> out(out_storage.data() + ((64 - out_base % 64) % 64) + (misalign * 7 + 3) % 64, size);
    std::copy(plain.begin(), plain.end(), buffer.begin());
    xts->encrypt(std::span<const uint8_t>(buffer), out, sector_size, first_iv);
    ASSERT_TRUE(std::equal(out.begin(), out.end(), expected.begin())) << "out-of-place encryption differs";
    ASSERT_TRUE(std::equal(buffer.begin(), buffer.end(), plain.begin())) << "out-of-place encryption changed its input";
    xts->decrypt(std::span<const uint8_t>(buffer), out, sector_size, first_iv);
    ASSERT_TRUE(std::equal(out.begin(), out.end(), expected_plain.begin())) << "out-of-place decryption differs";
  }
};

std::vector<uint8_t> random_key(size_t size, std::mt19937_64& rng) {
  std::vector<uint8_t> key(size);
  for (auto& b : key) b = static_cast<uint8_t>(rng());
  return key;
}

TEST_P(XtsBackend, RandomRunsMatchCryptoppXtsMode) {
  std::mt19937_64 rng(0x5eed0000 + static_cast<int>(GetParam()));
  for (int round = 0; round < 150; ++round) {
    const std::vector<uint8_t> key = random_key(rng() % 2 ? 64 : 32, rng);
    const size_t sector_size = kSectorSizes[rng() % 4];
    const size_t sectors = 1 + rng() % (64 * 1024 / sector_size);
    uint64_t first_iv = rng();
    if (round % 3 == 0) first_iv = std::numeric_limits<uint64_t>::max() - rng() % (2 * sectors * sector_size / 512);
    if (round % 3 == 1) first_iv = rng() % 100000;
    check(key, sector_size, sectors, first_iv, rng() % 64, rng);
    if (HasFatalFailure()) return;
  }
}

// Sector counts around the kernels' batches of tweak computations (8, 16 or 32 sectors).
TEST_P(XtsBackend, RunLengthsAroundBatchSizes) {
  std::mt19937_64 rng(42);
  for (const size_t key_size : {32, 64}) {
    const std::vector<uint8_t> key = random_key(key_size, rng);
    for (const size_t sector_size : kSectorSizes) {
      for (const size_t sectors : {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65}) {
        check(key, sector_size, sectors, 1000 * sectors, sectors % 3, rng);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// The tweak counter is 64 bits and wraps like dm-crypt's plain64: after 2^64 - 8 comes 0.
TEST_P(XtsBackend, TweakWrapsModulo2To64) {
  std::mt19937_64 rng(7);
  const std::vector<uint8_t> key = random_key(64, rng);
  check(key, 4096, 3, std::numeric_limits<uint64_t>::max() - 7, 0, rng);
  const auto xts = cipher(key);
  ASSERT_TRUE(xts);
  std::vector<uint8_t> run(3 * 4096, 0x3c);
  std::vector<uint8_t> last(4096, 0x3c);
  xts->encrypt(run, 4096, std::numeric_limits<uint64_t>::max() - 7);
  xts->encrypt(last, 4096, 8);
  EXPECT_TRUE(std::equal(last.begin(), last.end(), run.begin() + 2 * 4096));
}

TEST_P(XtsBackend, NameStartsWithBackendId) {
  const auto xts = cipher(std::vector<uint8_t>(32, 9));
  ASSERT_TRUE(xts);
  EXPECT_EQ(xts->backend_name().substr(0, cipher_backend_id(GetParam()).size()), cipher_backend_id(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Supported, XtsBackend, ::testing::ValuesIn(supported_cipher_backends()),
                         [](const auto& param_info) { return std::string(cipher_backend_id(param_info.param)); });

// Sets an environment variable for one scope and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() { old_ ? setenv(name_, old_->c_str(), 1) : unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(XtsBackends, ListIsFastestFirstAndEndsWithPortable) {
  const std::vector<CipherBackend> backends = supported_cipher_backends();
  std::vector<CipherBackend> fastest_first = {CipherBackend::vaes512, CipherBackend::vaes256, CipherBackend::aesni,
                                              CipherBackend::portable};
  std::erase_if(fastest_first,
                [&](CipherBackend b) { return std::find(backends.begin(), backends.end(), b) == backends.end(); });
  EXPECT_EQ(backends, fastest_first);
  ASSERT_FALSE(backends.empty());
  EXPECT_EQ(backends.back(), CipherBackend::portable);
  ScopedEnv unset("RBD_LUKS_CIPHER_BACKEND", "");
  auto best = make_xts_cipher(std::vector<uint8_t>(64, 1));
  ASSERT_TRUE(best.ok());
  EXPECT_EQ((*best)->backend_name().substr(0, cipher_backend_id(backends.front()).size()),
            cipher_backend_id(backends.front()));
}

TEST(XtsBackends, UnsupportedBackendIsAnError) {
  const std::vector<CipherBackend> supported = supported_cipher_backends();
  for (const CipherBackend backend : {CipherBackend::aesni, CipherBackend::vaes256, CipherBackend::vaes512}) {
    auto made = make_xts_cipher(std::vector<uint8_t>(64, 1), backend);
    const bool listed = std::find(supported.begin(), supported.end(), backend) != supported.end();
    EXPECT_EQ(made.ok(), listed) << cipher_backend_id(backend);
    if (!made.ok()) {
      EXPECT_TRUE(made.error().is(Errc::unsupported));
    }
  }
}

TEST(XtsBackends, EnvironmentOverridesBest) {
  for (const CipherBackend backend : supported_cipher_backends()) {
    const std::string id(cipher_backend_id(backend));
    ScopedEnv env("RBD_LUKS_CIPHER_BACKEND", id.c_str());
    auto made = make_xts_cipher(std::vector<uint8_t>(32, 1));
    ASSERT_TRUE(made.ok()) << id;
    EXPECT_EQ((*made)->backend_name().substr(0, id.size()), id);
    // An explicit request wins over the environment.
    auto portable = make_xts_cipher(std::vector<uint8_t>(32, 1), CipherBackend::portable);
    ASSERT_TRUE(portable.ok());
    EXPECT_EQ((*portable)->backend_name().substr(0, 8), "portable");
  }
  ScopedEnv env("RBD_LUKS_CIPHER_BACKEND", "rot13");
  auto made = make_xts_cipher(std::vector<uint8_t>(32, 1));
  ASSERT_FALSE(made.ok());
  EXPECT_TRUE(made.error().is(Errc::usage));
  EXPECT_NE(made.error().message().find("rot13"), std::string::npos);
}

}  // namespace
}  // namespace rbdluks
