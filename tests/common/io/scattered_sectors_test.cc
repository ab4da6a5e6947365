// decrypt_scattered against the contiguous path: random requests (aligned or not), random ways of
// cutting both the ciphertext and the plaintext into buffers, holes included, real AES-XTS.
#include "scattered_sectors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "test_support.h"

namespace rbdluks {
namespace {

// Cuts bytes into 1..5 buffers at random points (sometimes inside a sector, sometimes on one).
template <typename Byte>
std::vector<std::span<Byte>> cut(std::span<Byte> bytes, std::mt19937_64& rng, uint32_t sector_size) {
  std::vector<std::span<Byte>> buffers;
  const size_t cuts = rng() % 5;
  std::vector<size_t> points{0, bytes.size()};
  for (size_t i = 0; i < cuts; ++i) {
    size_t point = rng() % (bytes.size() + 1);
    if (rng() % 2 == 0) point -= point % sector_size;
    points.push_back(point);
  }
  std::sort(points.begin(), points.end());
  for (size_t i = 0; i + 1 < points.size(); ++i) buffers.push_back(bytes.subspan(points[i], points[i + 1] - points[i]));
  return buffers;
}

TEST(ScatteredSectors, MatchesContiguousDecryptionForAnyBufferLayout) {
  auto cipher = make_xts_cipher(random_bytes(64));
  ASSERT_TRUE(cipher) << cipher.error().message();
  std::mt19937_64 rng(20261203);
  for (int round = 0; round < 2000; ++round) {
    const uint32_t sector_size = 512u << (rng() % 4);
    const uint64_t offset = rng() % (8 * sector_size) + (rng() % 2 == 0 ? uint64_t{1} << 33 : 0);
    const uint64_t length = rng() % (6 * sector_size) + 1;
    const SectorSpan span = cover_sectors(offset, length, sector_size);

    // Ciphertext of random plaintext, with a hole now and then.
    std::vector<uint8_t> ciphertext = random_bytes(rng, span.size());
    encrypt_sectors(**cipher, ciphertext, sector_size, span.begin);
    for (uint64_t at = 0; at < span.size(); at += sector_size) {
      if (rng() % 4 == 0) std::fill_n(ciphertext.begin() + static_cast<ptrdiff_t>(at), sector_size, 0);
    }
    std::vector<uint8_t> expected = ciphertext;
    decrypt_sectors(**cipher, expected, sector_size, span.begin);

    std::vector<uint8_t> plaintext(length, 0xAA);
    const auto in = cut(std::span<const uint8_t>(ciphertext), rng, sector_size);
    const auto out = cut(std::span<uint8_t>(plaintext), rng, sector_size);
    decrypt_scattered(**cipher, span, in, out);
    ASSERT_EQ(plaintext, std::vector<uint8_t>(expected.begin() + static_cast<ptrdiff_t>(offset - span.begin),
                                              expected.begin() + static_cast<ptrdiff_t>(offset - span.begin + length)))
        << "round " << round << ": offset " << offset << " length " << length << " sector " << sector_size << ", "
        << in.size() << " ciphertext and " << out.size() << " plaintext buffers";
  }
}

}  // namespace
}  // namespace rbdluks
