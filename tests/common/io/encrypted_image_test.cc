// EncryptedImage over a file: round trips of any alignment, ciphertext checked against an
// independent AES-XTS (Python `cryptography`), holes, zeroing, the image edges, range errors, and
// concurrent unaligned writers that share sectors.
#include "encrypted_image.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "file_image.h"
#include "sector_codec.h"
#include "test_support.h"

namespace rbdluks {
namespace {

// Reference AES-XTS with dm-crypt plain64 tweaks (plaintext offset / 512, little-endian), one call
// per sector. "decrypt" turns the raw data region into plaintext (all-zero sectors stay zeros);
// "encrypt" writes a plaintext file into the raw data region.
constexpr const char* kReferenceXts = R"PY(
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
mode, key_hex, sector_size, data_offset, length, image, plain = sys.argv[1:]
key, ss, offset, n = bytes.fromhex(key_hex), int(sector_size), int(data_offset), int(length)

def xts(at, block, encrypt):
    c = Cipher(algorithms.AES(key), modes.XTS((at // 512).to_bytes(16, 'little')))
    op = c.encryptor() if encrypt else c.decryptor()
    return op.update(block) + op.finalize()

if mode == 'decrypt':
    with open(image, 'rb') as f:
        f.seek(offset)
        raw = f.read(n)
    out = b''.join(raw[s:s + ss] if raw[s:s + ss] == bytes(ss) else xts(s, raw[s:s + ss], False)
                   for s in range(0, n, ss))
    with open(plain, 'wb') as f:
        f.write(out)
else:
    with open(plain, 'rb') as f:
        data = f.read(n)
    out = b''.join(xts(s, data[s:s + ss], True) for s in range(0, n, ss))
    with open(image, 'r+b') as f:
        f.seek(offset)
        f.write(out)
)PY";

class EncryptedImageTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override {
    key_ = random_bytes(64);
    auto cipher = make_xts_cipher(key_);
    ASSERT_TRUE(cipher.ok()) << cipher.error().message();
    cipher_ = std::move(cipher).value();
    sector_size_ = GetParam();
    // A LUKS1-like offset that is not 4096-aligned for 512-byte sectors, a LUKS2-like one otherwise.
    data_offset_ = sector_size_ == 512 ? 4040 * 512 : 32768;
    data_size_ = 64 * sector_size_;
  }
  // A raw file of data_offset_ + data_size_ + extra bytes and an EncryptedImage on it.
  void open_image(BounceBufferConfig bounce = {}, uint64_t extra = 0) {
    auto raw = create_file_image(path(), data_offset_ + data_size_ + extra);
    ASSERT_TRUE(raw.ok()) << raw.error().message();
    raw_ = std::move(raw).value();
    image_ = std::make_unique<EncryptedImage>(*raw_, cipher_, data_offset_, sector_size_, std::nullopt, bounce);
    auto size = image_->size();
    ASSERT_TRUE(size.ok());
    ASSERT_EQ(*size, data_size_);
  }

  std::string path() const { return dir_.file("image"); }

  std::vector<uint8_t> read_all() {
    std::vector<uint8_t> out(data_size_);
    const Status st = image_->read(0, out);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message());
    return out;
  }

  std::vector<uint8_t> raw_data_region() {
    std::vector<uint8_t> out(data_size_);
    EXPECT_TRUE(raw_->read(data_offset_, out).ok());
    return out;
  }

  void write(uint64_t offset, std::span<const uint8_t> data, std::vector<uint8_t>& model) {
    const Status st = image_->write(offset, data);
    ASSERT_TRUE(st.ok()) << st.error().message();
    std::ranges::copy(data, model.begin() + static_cast<ptrdiff_t>(offset));
  }

  void run_reference(const std::string& mode, const std::string& plain_file) {
    const std::string args = mode + " " + hex(key_) + " " + std::to_string(sector_size_) + " " +
                             std::to_string(data_offset_) + " " + std::to_string(data_size_) + " " + path() + " " +
                             plain_file;
    std::string output;
    ASSERT_EQ(run_python(dir_.file("xts.py"), kReferenceXts, args, &output), 0) << args << "\n" << output;
  }

  TempDir dir_;
  std::vector<uint8_t> key_;
  std::shared_ptr<const XtsCipher> cipher_;
  uint32_t sector_size_ = 0;
  uint64_t data_offset_ = 0;
  uint64_t data_size_ = 0;
  std::unique_ptr<RawImage> raw_;
  std::unique_ptr<EncryptedImage> image_;
};

INSTANTIATE_TEST_SUITE_P(EncryptedImage, EncryptedImageTest, ::testing::Values(512u, 4096u),
                         [](const auto& param_info) { return "sector" + std::to_string(param_info.param); });

TEST_P(EncryptedImageTest, RoundTripsAlignedAndUnalignedRequests) {
  // Bounce buffers of a few sectors, so many requests are cut into pieces.
  open_image({.buffer_bytes = 8192, .count = 2});
  std::mt19937_64 rng(sector_size_);
  std::vector<uint8_t> model(data_size_, 0);
  for (int i = 0; i < 300; ++i) {
    uint64_t offset = rng() % data_size_;
    uint64_t length = 1 + rng() % std::min<uint64_t>(data_size_ - offset, 6 * sector_size_);
    if (i % 4 == 0) {  // whole sectors
      offset = offset / sector_size_ * sector_size_;
      length = std::max<uint64_t>(sector_size_, length / sector_size_ * sector_size_);
    }
    write(offset, random_bytes(rng, length), model);

    const uint64_t read_offset = rng() % data_size_;
    std::vector<uint8_t> got(1 + rng() % (data_size_ - read_offset));
    ASSERT_TRUE(image_->read(read_offset, got).ok());
    ASSERT_TRUE(std::equal(got.begin(), got.end(), model.begin() + static_cast<ptrdiff_t>(read_offset)))
        << "read of " << got.size() << " at " << read_offset << " after write " << i;
  }
  EXPECT_EQ(read_all(), model);
}

TEST_P(EncryptedImageTest, CiphertextMatchesIndependentAesXts) {
  open_image();
  std::mt19937_64 rng(1);
  const std::vector<uint8_t> plain = random_bytes(rng, data_size_);
  std::vector<uint8_t> model(data_size_, 0);
  for (uint64_t at = 0; at < data_size_;) {  // unaligned pieces covering everything
    const uint64_t length = std::min<uint64_t>(data_size_ - at, 1 + rng() % (3 * sector_size_));
    write(at, std::span(plain).subspan(at, length), model);
    at += length;
  }
  ASSERT_TRUE(image_->flush().ok());

  const std::vector<uint8_t> raw = raw_data_region();
  for (uint64_t s = 0; s < data_size_; s += sector_size_) {
    ASSERT_FALSE(std::equal(raw.begin() + s, raw.begin() + s + sector_size_, plain.begin() + s)) << "sector " << s;
  }
  const std::string decrypted_file = dir_.file("decrypted");
  run_reference("decrypt", decrypted_file);
  EXPECT_EQ(read_file(decrypted_file), plain);

  // And the other way: what the reference encrypts, EncryptedImage reads.
  const std::vector<uint8_t> plain2 = random_bytes(rng, data_size_);
  const std::string plain_file = dir_.file("plain2");
  write_file(plain_file, plain2);
  run_reference("encrypt", plain_file);
  EXPECT_EQ(read_all(), plain2);
}

TEST_P(EncryptedImageTest, NeverWrittenSectorsReadAsZerosAndStayHoles) {
  open_image();
  EXPECT_EQ(read_all(), std::vector<uint8_t>(data_size_, 0));

  const uint64_t sector = 5 * sector_size_;
  std::vector<uint8_t> model(data_size_, 0);
  write(sector + 10, std::vector<uint8_t>(20, 0x42), model);
  EXPECT_EQ(read_all(), model);
  const std::vector<uint8_t> raw = raw_data_region();
  for (uint64_t s = 0; s < data_size_; s += sector_size_) {
    EXPECT_EQ(is_zero(std::span(raw).subspan(s, sector_size_)), s != sector) << "sector at " << s;
  }
}

TEST_P(EncryptedImageTest, WriteZeroesAndDiscardClearPartialAndWholeSectors) {
  open_image({.buffer_bytes = 8192, .count = 2});
  std::mt19937_64 rng(3);
  std::vector<uint8_t> model(data_size_, 0);
  write(0, random_bytes(rng, data_size_), model);

  const uint64_t zero_at = sector_size_ / 2 + 3;  // partial head, two whole sectors, partial tail
  const uint64_t zero_length = 3 * sector_size_;
  ASSERT_TRUE(image_->write_zeroes(zero_at, zero_length).ok());
  std::fill_n(model.begin() + zero_at, zero_length, 0);
  EXPECT_EQ(read_all(), model);
  const std::vector<uint8_t> raw = raw_data_region();
  EXPECT_FALSE(is_zero(std::span(raw).first(sector_size_)));
  EXPECT_TRUE(is_zero(std::span(raw).subspan(sector_size_, 2 * sector_size_))) << "whole sectors become holes";
  EXPECT_FALSE(is_zero(std::span(raw).subspan(3 * sector_size_, sector_size_)));

  const uint64_t discard_at = 10 * sector_size_ + 1;
  ASSERT_TRUE(image_->discard(discard_at, 2 * sector_size_ + 5).ok());
  std::fill_n(model.begin() + discard_at, 2 * sector_size_ + 5, 0);
  EXPECT_EQ(read_all(), model);

  ASSERT_TRUE(image_->write_zeroes(0, data_size_).ok());
  EXPECT_TRUE(is_zero(raw_data_region()));
  EXPECT_EQ(read_all(), std::vector<uint8_t>(data_size_, 0));
}

TEST_P(EncryptedImageTest, WorksAtBothEndsAndLeavesBytesOutsideTheSegmentAlone) {
  const uint64_t tail = sector_size_ - 1;  // raw bytes after the last whole sector
  open_image({}, tail);
  const std::vector<uint8_t> header(data_offset_, 0xA5);
  const std::vector<uint8_t> trailer(tail, 0x5A);
  ASSERT_TRUE(raw_->write(0, header).ok());
  ASSERT_TRUE(raw_->write(data_offset_ + data_size_, trailer).ok());

  std::mt19937_64 rng(4);
  std::vector<uint8_t> model(data_size_, 0);
  write(0, random_bytes(rng, 3), model);
  write(data_size_ - 7, random_bytes(rng, 7), model);
  std::vector<uint8_t> last(1);
  ASSERT_TRUE(image_->read(data_size_ - 1, last).ok());
  EXPECT_EQ(last[0], model.back());
  ASSERT_TRUE(image_->write_zeroes(data_size_ - 2, 2).ok());
  std::fill_n(model.end() - 2, 2, 0);
  EXPECT_EQ(read_all(), model);

  std::vector<uint8_t> raw_header(data_offset_), raw_trailer(tail);
  ASSERT_TRUE(raw_->read(0, raw_header).ok());
  ASSERT_TRUE(raw_->read(data_offset_ + data_size_, raw_trailer).ok());
  EXPECT_EQ(raw_header, header);
  EXPECT_EQ(raw_trailer, trailer);
}

TEST_P(EncryptedImageTest, RejectsRequestsPastTheEnd) {
  open_image();
  std::vector<uint8_t> two(2, 0x11);
  const Status read = image_->read(data_size_ - 1, two);
  ASSERT_FALSE(read.ok());
  EXPECT_TRUE(read.error().is(Errc::failure));
  EXPECT_NE(read.error().message().find("read of 2 bytes at " + std::to_string(data_size_ - 1) +
                                        " passes the end of the encrypted image"),
            std::string::npos)
      << read.error().message();
  EXPECT_NE(read.error().message().find("(size " + std::to_string(data_size_) + ")"), std::string::npos);

  EXPECT_FALSE(image_->write(data_size_ - 1, two).ok());
  EXPECT_FALSE(image_->write(data_size_ + 1, std::span<const uint8_t>()).ok());
  EXPECT_FALSE(image_->write_zeroes(1, UINT64_MAX).ok()) << "offset + length overflows";
  EXPECT_FALSE(image_->discard(data_size_, 1).ok());
  EXPECT_TRUE(image_->read(data_size_, std::span<uint8_t>()).ok());
  EXPECT_TRUE(is_zero(raw_data_region())) << "a rejected request wrote something";
}

TEST_P(EncryptedImageTest, SizeFollowsRawImageOrFixedDataSize) {
  open_image({}, sector_size_ - 1);
  EXPECT_EQ(*image_->size(), data_size_) << "a partial last sector is not part of the image";

  // A fixed-size segment is that size while the image holds it, and never reaches past its end.
  EncryptedImage fixed(*raw_, cipher_, data_offset_, sector_size_, uint64_t{4 * sector_size_});
  ASSERT_TRUE(raw_->resize(data_offset_ + 8 * sector_size_).ok());
  EXPECT_EQ(*fixed.size(), 4 * sector_size_);
  ASSERT_TRUE(raw_->resize(data_offset_ + 2 * sector_size_ + 1).ok());
  EXPECT_EQ(*fixed.size(), 2 * sector_size_);

  ASSERT_TRUE(raw_->resize(data_offset_ - 1).ok());
  EXPECT_EQ(*image_->size(), 0u);
  EXPECT_EQ(*fixed.size(), 0u);
}

TEST_P(EncryptedImageTest, WritesLeaveTheCallerBufferUnchanged) {
  open_image();
  std::mt19937_64 rng(5);
  const std::vector<uint8_t> data = random_bytes(rng, 4 * sector_size_);
  std::vector<uint8_t> buffer = data;
  ASSERT_TRUE(image_->write(0, buffer).ok());
  EXPECT_EQ(buffer, data);
  ASSERT_TRUE(image_->write(sector_size_ + 3, std::span(buffer).first(2 * sector_size_)).ok());
  EXPECT_EQ(buffer, data);
}

// Eight threads own interleaved runs of bytes whose boundaries fall inside sectors, so every write
// is a read-modify-write of sectors holding other threads' bytes. Each thread writes (and zeroes)
// only its own bytes, so its own model is exact: any read of its bytes, and the final image, must
// match it. Without the range lock, concurrent read-modify-writes of a shared sector lose bytes.
TEST_P(EncryptedImageTest, ConcurrentUnalignedWritersSharingSectorsLoseNothing) {
  open_image({.buffer_bytes = 8192, .count = 2});
  constexpr int kThreads = 8;
  std::mt19937_64 layout_rng(6);
  struct Run {
    uint64_t begin, end;
  };
  std::vector<std::vector<Run>> runs(kThreads);
  std::vector<int> owner(data_size_);
  int next_owner = 0;
  for (uint64_t at = 0; at < data_size_;) {
    const uint64_t end = std::min<uint64_t>(data_size_, at + 1 + layout_rng() % (sector_size_ + sector_size_ / 2));
    runs[next_owner].push_back({at, end});
    std::fill(owner.begin() + static_cast<ptrdiff_t>(at), owner.begin() + static_cast<ptrdiff_t>(end), next_owner);
    next_owner = (next_owner + 1) % kThreads;
    at = end;
  }

  std::vector<uint8_t> model(data_size_, 0);  // each byte written only by its owner's thread
  std::atomic<uint64_t> failures{0}, bad_bytes{0}, writes{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1000);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      std::vector<uint8_t> buffer;
      for (uint64_t seq = 0; std::chrono::steady_clock::now() < deadline; ++seq) {
        const Run& run = runs[t][rng() % runs[t].size()];
        const uint64_t a = run.begin + rng() % (run.end - run.begin);
        const uint64_t b = a + 1 + rng() % (run.end - a);
        const int op = static_cast<int>(rng() % 10);
        if (op < 6) {
          buffer.resize(b - a);
          for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<uint8_t>((seq * 8 + t) * 29 + i);
          if (!image_->write(a, buffer).ok()) ++failures;
          std::ranges::copy(buffer, model.begin() + static_cast<ptrdiff_t>(a));
          ++writes;
        } else if (op < 8) {
          if (!image_->write_zeroes(a, b - a).ok()) ++failures;
          std::fill(model.begin() + static_cast<ptrdiff_t>(a), model.begin() + static_cast<ptrdiff_t>(b), 0);
          ++writes;
        } else {
          // Read around the run, across other threads' bytes; check this thread's own bytes.
          const uint64_t from = run.begin - std::min<uint64_t>(run.begin, rng() % sector_size_);
          const uint64_t to = std::min<uint64_t>(data_size_, run.end + rng() % sector_size_);
          buffer.resize(to - from);
          if (!image_->read(from, buffer).ok()) ++failures;
          for (uint64_t i = from; i < to; ++i) {
            if (owner[i] == t && buffer[i - from] != model[i]) ++bad_bytes;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();

  EXPECT_EQ(failures.load(), 0u);
  EXPECT_EQ(bad_bytes.load(), 0u) << "a thread read back bytes other than its own last write";
  EXPECT_GT(writes.load(), 500u);
  const std::vector<uint8_t> final_image = read_all();
  uint64_t lost = 0;
  for (uint64_t i = 0; i < data_size_; ++i) lost += final_image[i] != model[i];
  EXPECT_EQ(lost, 0u) << "bytes whose owner's last write was lost";
}

}  // namespace
}  // namespace rbdluks
