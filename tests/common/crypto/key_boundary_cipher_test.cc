// KeyBoundaryCipher: before begin() every sector is under the old key; afterwards sectors before the
// boundary are under the new key and the rest under the old one, also when one call spans the
// boundary, for every sector size; the boundary moves only by advance(), and begin() works once.
#include "key_boundary_cipher.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "xts_cipher.h"

namespace rbdluks {
namespace {

std::shared_ptr<const XtsCipher> cipher_with_key(uint8_t fill) {
  const std::vector<uint8_t> key(64, fill);
  auto cipher = make_xts_cipher(key);
  EXPECT_TRUE(cipher);
  return std::shared_ptr<const XtsCipher>(std::move(*cipher));
}

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 7 + 3);
  return v;
}

// What the split cipher should produce: each sector of [first_iv..) under the key its place says.
std::vector<uint8_t> expected(const XtsCipher& before, const XtsCipher& after, uint64_t boundary_iv,
                              const std::vector<uint8_t>& plain, size_t sector_size, uint64_t first_iv) {
  std::vector<uint8_t> out(plain.size());
  for (size_t at = 0; at < plain.size(); at += sector_size) {
    const uint64_t iv = first_iv + at / 512;
    const XtsCipher& cipher = iv < boundary_iv ? before : after;
    cipher.encrypt(std::span(plain).subspan(at, sector_size), std::span(out).subspan(at, sector_size), sector_size, iv);
  }
  return out;
}

TEST(KeyBoundaryCipher, OldKeyEverywhereUntilBegin) {
  const auto old_key = cipher_with_key(1);
  KeyBoundaryCipher cipher(old_key);
  EXPECT_FALSE(cipher.begun());
  const auto plain = pattern(8 * 4096);
  std::vector<uint8_t> got(plain.size()), want(plain.size());
  cipher.encrypt(plain, got, 4096, 0);
  old_key->encrypt(plain, want, 4096, 0);
  EXPECT_EQ(got, want);
}

TEST(KeyBoundaryCipher, SplitsARunAtTheBoundaryForEverySectorSize) {
  const auto old_key = cipher_with_key(1);
  const auto new_key = cipher_with_key(2);
  for (const size_t sector_size : {512u, 1024u, 2048u, 4096u}) {
    KeyBoundaryCipher cipher(old_key);
    ASSERT_TRUE(cipher.begin(new_key, 0));
    const auto plain = pattern(16 * sector_size);
    const uint64_t first_iv = 40 * sector_size / 512;  // the run starts at sector 40
    // Boundaries before the run, inside it at each sector, and past it.
    for (uint64_t sector = 0; sector <= 60; ++sector) {
      const uint64_t boundary = sector * sector_size;
      cipher.advance(boundary);
      std::vector<uint8_t> got(plain.size());
      cipher.encrypt(plain, got, sector_size, first_iv);
      ASSERT_EQ(got, expected(*new_key, *old_key, boundary / 512, plain, sector_size, first_iv))
          << "sector size " << sector_size << ", boundary at sector " << sector;
      std::vector<uint8_t> back(plain.size());
      cipher.decrypt(got, back, sector_size, first_iv);
      ASSERT_EQ(back, plain) << "sector size " << sector_size << ", boundary at sector " << sector;
    }
  }
}

TEST(KeyBoundaryCipher, BeginsOnce) {
  KeyBoundaryCipher cipher(cipher_with_key(1));
  EXPECT_TRUE(cipher.begin(cipher_with_key(2), 4096));
  EXPECT_TRUE(cipher.begun());
  EXPECT_FALSE(cipher.begin(cipher_with_key(3), 0));
  // Still the second key before 4096: a sector there does not decrypt to the same under key 3.
  const auto plain = pattern(4096);
  std::vector<uint8_t> got(4096), want(4096);
  cipher.encrypt(plain, got, 4096, 0);
  cipher_with_key(2)->encrypt(plain, want, 4096, 0);
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace rbdluks
