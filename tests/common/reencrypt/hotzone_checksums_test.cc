// The checksums of a hotzone's blocks: cryptsetup's whole-block hash, and the head hash that RBD
// runs use, each block's digest in its place.
#include "hotzone_checksums.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "hash.h"

namespace rbdluks {
namespace {

Luks2ReencryptKeyslot area_with(const std::string& hash, uint32_t block) {
  Luks2ReencryptKeyslot area;
  area.area_type = "checksum";
  area.hash = hash;
  area.sector_size = block;
  area.area_size = 4096;
  return area;
}

std::array<uint8_t, 32> sha256_of(std::span<const uint8_t> bytes) {
  std::array<uint8_t, 32> out{};
  EXPECT_TRUE(hash_parts("sha256", std::span(&bytes, 1), out));
  return out;
}

class HotzoneChecksums : public ::testing::TestWithParam<uint32_t> {};

TEST_P(HotzoneChecksums, EachBlockHashesWhereItBelongs) {
  const size_t block = GetParam();
  constexpr size_t kBlocks = 3;
  constexpr size_t kDigest = 32;
  std::vector<uint8_t> zone(kBlocks * block);
  for (size_t i = 0; i < zone.size(); ++i) zone[i] = static_cast<uint8_t>(i * 7 + i / 251);
  std::vector<uint8_t> whole(kBlocks * kDigest), head(kBlocks * kDigest);
  ASSERT_TRUE(hash_blocks(area_with("sha256", static_cast<uint32_t>(block)), zone, whole));
  ASSERT_TRUE(hash_blocks(area_with(kHeadChecksumHash, static_cast<uint32_t>(block)), zone, head));
  for (size_t b = 0; b < kBlocks; ++b) {
    const auto bytes = std::span<const uint8_t>(zone).subspan(b * block, block);
    const auto at = [&](const std::vector<uint8_t>& v) {
      const auto digest = std::span(v).subspan(b * kDigest, kDigest);
      return std::vector<uint8_t>(digest.begin(), digest.end());
    };
    const auto want_whole = sha256_of(bytes);
    const auto want_head = sha256_of(bytes.first(64));
    EXPECT_EQ(at(whole), std::vector<uint8_t>(want_whole.begin(), want_whole.end())) << "block " << b;
    EXPECT_EQ(at(head), std::vector<uint8_t>(want_head.begin(), want_head.end())) << "block " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(Blocks, HotzoneChecksums, ::testing::Values(512u, 4096u));

TEST(HotzoneChecksumNames, KnowsCryptsetupHashesAndTheHead) {
  EXPECT_TRUE(check_checksum_hash("sha256"));
  EXPECT_TRUE(check_checksum_hash("sha1"));
  EXPECT_TRUE(check_checksum_hash(kHeadChecksumHash));
  auto unknown = check_checksum_hash("crc32");
  ASSERT_FALSE(unknown);
  EXPECT_TRUE(unknown.error().is(Errc::usage));
  auto capacity = checksum_capacity(area_with(kHeadChecksumHash, 4096));
  ASSERT_TRUE(capacity);
  EXPECT_EQ(*capacity, 4096u / 32 * 4096);
}

}  // namespace
}  // namespace rbdluks
