// Sector codec: span arithmetic, chunking, the zero test, the hole rule (sectors and 512-byte
// units) and the write encodings,
// against a transparent stand-in cipher that records the tweaks it is given.
#include "sector_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace rbdluks {
namespace {

// Not AES: XORs each byte with a keystream derived from its sector's tweak, so results are easy to
// predict, a wrong tweak shows, and a zero plaintext never gives a zero ciphertext.
class TweakXorCipher final : public XtsCipher {
 public:
  struct Call {
    size_t bytes;
    size_t sector_size;
    uint64_t first_iv;
    bool operator==(const Call&) const = default;
  };

  static uint8_t keystream(uint64_t iv, size_t i) { return static_cast<uint8_t>((iv * 131 + i * 7) % 255 + 1); }

  using XtsCipher::decrypt;
  using XtsCipher::encrypt;
  void encrypt(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
               uint64_t first_iv) const override {
    apply(in, out, sector_size, first_iv);
  }
  void decrypt(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
               uint64_t first_iv) const override {
    apply(in, out, sector_size, first_iv);
  }
  std::string_view backend_name() const override { return "test xor"; }

  mutable std::vector<Call> calls;

 private:
  void apply(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size, uint64_t first_iv) const {
    calls.push_back({in.size(), sector_size, first_iv});
    for (size_t s = 0; s < in.size() / sector_size; ++s) {
      const uint64_t iv = first_iv + s * sector_size / 512;
      for (size_t i = 0; i < sector_size; ++i) out[s * sector_size + i] = in[s * sector_size + i] ^ keystream(iv, i);
    }
  }
};

std::vector<uint8_t> pattern(size_t size, uint8_t seed) {
  std::vector<uint8_t> v(size);
  for (size_t i = 0; i < size; ++i) v[i] = static_cast<uint8_t>(seed + i * 13 + (i >> 8));
  return v;
}

struct SpanCase {
  uint64_t offset, length;
  uint32_t sector_size;
  uint64_t begin, end;
  bool aligned, head_partial, tail_partial;
  std::vector<uint64_t> partial;
};

TEST(SectorCodec, CoverSectorsFindsSpanAndPartialEdges) {
  const std::vector<SpanCase> cases = {
      {0, 4096, 4096, 0, 4096, true, false, false, {}},
      {4096, 8192, 4096, 4096, 12288, true, false, false, {}},
      {100, 10, 512, 0, 512, false, true, false, {0}},
      {10, 502, 512, 0, 512, false, true, false, {0}},
      {0, 100, 4096, 0, 4096, false, true, false, {0}},
      {500, 24, 512, 0, 1024, false, true, true, {0, 512}},
      {512, 1000, 512, 512, 1536, false, false, true, {1024}},
      {4000, 8288, 4096, 0, 12288, false, true, false, {0}},
      {4095, 4098, 4096, 0, 12288, false, true, true, {0, 8192}},
      {(uint64_t{1} << 40) + 1,
       1,
       512,
       uint64_t{1} << 40,
       (uint64_t{1} << 40) + 512,
       false,
       true,
       false,
       {uint64_t{1} << 40}},
  };
  for (const SpanCase& c : cases) {
    SCOPED_TRACE(std::to_string(c.offset) + "+" + std::to_string(c.length) + " /" + std::to_string(c.sector_size));
    const SectorSpan span = cover_sectors(c.offset, c.length, c.sector_size);
    EXPECT_EQ(span.begin, c.begin);
    EXPECT_EQ(span.end, c.end);
    EXPECT_EQ(span.aligned(), c.aligned);
    EXPECT_EQ(span.head_partial(), c.head_partial);
    EXPECT_EQ(span.tail_partial(), c.tail_partial);
    const PartialSectors partial = partial_sectors(span);
    EXPECT_EQ(std::vector<uint64_t>(partial.begin(), partial.end()), c.partial);
  }
}

TEST(SectorCodec, FullyCoveredSectorsAndPartsInSectors) {
  const SectorSpan both = cover_sectors(500, 1100, 512);  // [0, 2048): 500..512, 512..1536 whole, ..1600
  EXPECT_EQ(both.full_begin(), 512u);
  EXPECT_EQ(both.full_end(), 1536u);
  const SectorSpan head = part_in_sector(both, 0);
  EXPECT_EQ(head.request_begin, 500u);
  EXPECT_EQ(head.request_end, 512u);
  EXPECT_EQ(head.size(), 512u);
  const SectorSpan tail = part_in_sector(both, 1536);
  EXPECT_EQ(tail.begin, 1536u);
  EXPECT_EQ(tail.request_begin, 1536u);
  EXPECT_EQ(tail.request_end, 1600u);

  const SectorSpan inside = cover_sectors(4100, 10, 4096);  // one partial sector: nothing whole
  EXPECT_EQ(inside.full_begin(), inside.full_end());
  const SectorSpan adjacent = cover_sectors(4000, 200, 4096);  // two partial sectors
  EXPECT_EQ(adjacent.full_begin(), adjacent.full_end());
  const SectorSpan aligned = cover_sectors(4096, 8192, 4096);
  EXPECT_EQ(aligned.full_begin(), 4096u);
  EXPECT_EQ(aligned.full_end(), 12288u);
}

TEST(SectorCodec, WindowAndSectorLocateBytesInSpanBuffer) {
  const SectorSpan span = cover_sectors(1000, 100, 512);  // span [512, 1536)
  std::vector<uint8_t> buffer(span.size());
  const auto window = span.window(std::span<uint8_t>(buffer));
  EXPECT_EQ(window.data(), buffer.data() + 488);
  EXPECT_EQ(window.size(), 100u);
  const auto second = span.sector_in(std::span<uint8_t>(buffer), 1024);
  EXPECT_EQ(second.data(), buffer.data() + 512);
  EXPECT_EQ(second.size(), 512u);
}

TEST(SectorCodec, NextChunkCutsOnSectorBoundariesWithinBufferSize) {
  std::mt19937_64 rng(7);
  for (uint32_t sector_size : {512u, 4096u}) {
    for (int round = 0; round < 200; ++round) {
      const uint64_t max_span = sector_size * (1 + rng() % 4);
      const uint64_t offset = rng() % (1 << 20);
      const uint64_t end = offset + 1 + rng() % (64 << 10);
      uint64_t position = offset;
      uint64_t previous_span_end = 0;
      while (position < end) {
        const SectorSpan span = next_chunk(position, end, max_span, sector_size);
        ASSERT_EQ(span.request_begin, position);
        ASSERT_GT(span.request_end, position);
        ASSERT_LE(span.request_end, end);
        ASSERT_LE(span.size(), max_span);
        ASSERT_GE(span.begin, previous_span_end) << "two pieces share a sector";
        // Every piece but the last ends on a sector boundary.
        if (span.request_end != end) {
          ASSERT_EQ(span.request_end % sector_size, 0u);
        }
        previous_span_end = span.end;
        position = span.request_end;
      }
    }
  }
}

TEST(SectorCodec, IsZeroSeesEveryByteAtAnyAlignment) {
  std::vector<uint8_t> storage(300 + 8, 0);
  for (size_t shift = 0; shift < 8; ++shift) {
    for (size_t size : {0u, 1u, 7u, 8u, 63u, 64u, 65u, 200u, 300u}) {
      std::span<uint8_t> bytes(storage.data() + shift, size);
      EXPECT_TRUE(is_zero(bytes));
      for (size_t i = 0; i < size; ++i) {
        bytes[i] = 0x80;
        EXPECT_FALSE(is_zero(bytes)) << "shift " << shift << " size " << size << " byte " << i;
        bytes[i] = 0;
      }
    }
  }
}

TEST(SectorCodec, TweakIsPlaintextOffsetIn512ByteUnits) {
  TweakXorCipher cipher;
  auto data = pattern(3 * 4096, 1);
  encrypt_sectors(cipher, data, 4096, 5 * 4096);
  ASSERT_EQ(cipher.calls.size(), 1u);
  EXPECT_EQ(cipher.calls[0], (TweakXorCipher::Call{3 * 4096, 4096, 40}));
  EXPECT_EQ(data[4096], pattern(3 * 4096, 1)[4096] ^ TweakXorCipher::keystream(48, 0));
}

TEST(SectorCodec, DecryptLeavesAllZeroSectorsAsHolesAndBatchesRuns) {
  TweakXorCipher cipher;
  const auto plain = pattern(5 * 512, 9);
  auto data = plain;
  encrypt_sectors(cipher, data, 512, 1024);
  // Sector 2 was never written; sector 3 is written but ends in zeros except one byte.
  std::fill(data.begin() + 2 * 512, data.begin() + 3 * 512, 0);
  std::fill(data.begin() + 3 * 512, data.begin() + 4 * 512 - 1, 0);
  cipher.calls.clear();
  decrypt_sectors(cipher, data, 512, 1024);

  EXPECT_EQ((std::vector<TweakXorCipher::Call>{{1024, 512, 2}, {1024, 512, 5}}), cipher.calls);
  EXPECT_TRUE(std::equal(plain.begin(), plain.begin() + 1024, data.begin()));
  EXPECT_TRUE(is_zero(std::span<const uint8_t>(data).subspan(1024, 512)));
  EXPECT_FALSE(is_zero(std::span<const uint8_t>(data).subspan(1536, 512))) << "a nearly-zero sector is not a hole";
  EXPECT_TRUE(std::equal(plain.begin() + 2048, plain.end(), data.begin() + 2048));
}

TEST(SectorCodec, EncodeWriteMergesDataIntoPartialSectors) {
  TweakXorCipher cipher;
  const SectorSpan span = cover_sectors(512 + 100, 1000, 512);  // [512, 2048), head and tail partial
  const auto old_plain = pattern(span.size(), 3);
  const auto data = pattern(1000, 200);
  const auto data_copy = data;
  std::vector<uint8_t> buffer(span.size(), 0xEE);  // the middle must be overwritten
  for (uint64_t sector : partial_sectors(span)) {
    std::copy_n(old_plain.begin() + (sector - span.begin), 512, buffer.begin() + (sector - span.begin));
  }
  encode_write(cipher, buffer, span, data);
  EXPECT_EQ(data, data_copy);

  decrypt_sectors(cipher, buffer, 512, span.begin);
  auto expected = old_plain;
  std::copy(data.begin(), data.end(), expected.begin() + 100);
  EXPECT_EQ(buffer, expected);
}

TEST(SectorCodec, EncodeZeroesMakesWholeSectorsHoles) {
  TweakXorCipher cipher;
  const SectorSpan span = cover_sectors(4096 + 10, 3 * 4096, 4096);  // [4096, 20480)
  const auto old_plain = pattern(span.size(), 5);
  auto buffer = old_plain;  // only the partial sectors matter, the rest is overwritten
  encode_zeroes(cipher, buffer, span);

  const std::span<const uint8_t> out(buffer);
  EXPECT_TRUE(is_zero(out.subspan(4096, 2 * 4096))) << "fully covered sectors are holes";
  EXPECT_FALSE(is_zero(out.first(4096)));
  EXPECT_FALSE(is_zero(out.last(4096)));
  decrypt_sectors(cipher, buffer, 4096, span.begin);
  auto expected = old_plain;
  std::fill(expected.begin() + 10, expected.begin() + 10 + 3 * 4096, 0);
  EXPECT_EQ(buffer, expected);
}

TEST(SectorCodec, OutOfPlaceDecryptionWritesZerosForHoles) {
  const TweakXorCipher cipher;
  const std::vector<uint8_t> data = pattern(3 * 4096, 5);
  std::vector<uint8_t> ciphertext(data.size());
  encrypt_sectors(cipher, data, ciphertext, 4096, 8192);
  std::fill_n(ciphertext.begin() + 4096, 4096, 0);
  std::vector<uint8_t> out(data.size(), 0xAA);
  decrypt_sectors(cipher, ciphertext, out, 4096, 8192);
  EXPECT_TRUE(std::equal(out.begin(), out.begin() + 4096, data.begin()));
  EXPECT_TRUE(is_zero(std::span(out).subspan(4096, 4096)));
  EXPECT_TRUE(std::equal(out.begin() + 8192, out.end(), data.begin() + 8192));
  EXPECT_EQ(cipher.calls, (std::vector<TweakXorCipher::Call>{{12288, 4096, 16}, {4096, 4096, 16}, {4096, 4096, 32}}));
}

TEST(SectorCodec, ZeroUnitsMarksEachAllZero512ByteUnit) {
  std::vector<uint8_t> sector(4096, 0);
  EXPECT_EQ(zero_units(sector), 0xffu);
  sector[512 * 3 + 511] = 1;
  sector[512 * 6] = 1;
  EXPECT_EQ(zero_units(sector), 0xffu & ~(1u << 3) & ~(1u << 6));
  EXPECT_EQ(zero_units(std::span(sector).first(512)), 1u);
}

// A sector that clients are putting back unit by unit (rmw_plan.h) holds all-zero units among
// written ones: those read as zeros, the others decrypt, in place and out of place.
TEST(SectorCodec, AllZeroUnitsInsideASectorReadAsZeros) {
  const TweakXorCipher cipher;
  const std::vector<uint8_t> plain = pattern(3 * 4096, 7);
  std::vector<uint8_t> ciphertext(plain.size());
  encrypt_sectors(cipher, plain, ciphertext, 4096, 8192);
  std::fill_n(ciphertext.begin() + 4096 + 2 * 512, 512, 0);
  std::fill_n(ciphertext.begin() + 4096 + 7 * 512, 512, 0);
  auto expected = plain;
  std::fill_n(expected.begin() + 4096 + 2 * 512, 512, 0);
  std::fill_n(expected.begin() + 4096 + 7 * 512, 512, 0);

  std::vector<uint8_t> out(plain.size(), 0xAA);
  cipher.calls.clear();
  decrypt_sectors(cipher, ciphertext, out, 4096, 8192);
  EXPECT_EQ(out, expected);
  EXPECT_EQ(cipher.calls, (std::vector<TweakXorCipher::Call>{{4096, 4096, 16}, {4096, 4096, 24}, {4096, 4096, 32}}))
      << "the sector with zero units is decrypted on its own, between the runs";

  decrypt_sectors(cipher, ciphertext, 4096, 8192);
  EXPECT_EQ(ciphertext, expected);
}

}  // namespace
}  // namespace rbdluks
