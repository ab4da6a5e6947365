// In-place encryption on image files: the result (the plaintext behind a LUKS2 header at the data
// offset, the image cut back to plaintext + header), the refusals that leave the image as it was,
// and crash points: the run dies (or one change fails) at every change it makes, with any of the
// writes not yet flushed lost, and a second run must then finish with the same plaintext.
#include "encryption.h"

#include <gtest/gtest.h>

#include "crash_points.h"
#include "encrypted_image.h"
#include "file_image.h"
#include "luks_volume.h"
#include "test_support.h"
#include "xts_cipher.h"

namespace rbdluks {
namespace {

constexpr uint64_t kShift = 1 << 20;
constexpr uint64_t kPlainBytes = 2 << 20;

class EncryptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    plaintext_ = random_bytes(kPlainBytes);
    write_file(dir_.file("image"), plaintext_);
    auto image = open_file_image(dir_.file("image"), OpenMode::read_write);
    ASSERT_TRUE(image) << image.error().message();
    image_ = std::move(*image);
  }

  static FormatOptions format() {
    FormatOptions options;
    options.key_bytes = 32;
    options.data_offset = kShift;
    options.kdf.type = KdfType::pbkdf2;
    options.kdf.force_iterations = 1000;
    return options;
  }

  static ReencryptOptions small_steps() { return crash_point_steps(512 << 10); }

  Result<ReencryptReport> encrypt(RawImage& image) {
    return encrypt_luks2(image, bytes_of("passphrase"), format(), small_steps());
  }

  // The image is plaintext + header long, opens with the passphrase, reads back the plaintext, and
  // keeps no state of the run.
  void expect_encrypted(const std::string& context) {
    auto size = image_->size();
    ASSERT_TRUE(size);
    EXPECT_EQ(*size, kPlainBytes + kShift) << context;
    auto volume = load_luks(*image_);
    ASSERT_TRUE(volume) << context << ": " << volume.error().message();
    ASSERT_TRUE((*volume)->supported()) << context << ": " << (*volume)->supported().error().message();
    EXPECT_EQ((*volume)->layout().data_offset, kShift) << context;
    auto key = (*volume)->open(bytes_of("passphrase"));
    ASSERT_TRUE(key) << context << ": " << key.error().message();
    auto cipher = make_xts_cipher(key->volume_key.span());
    ASSERT_TRUE(cipher);
    EncryptedImage data(*image_, std::shared_ptr<const XtsCipher>(std::move(*cipher)), kShift, 4096, std::nullopt);
    auto plain_size = data.size();
    ASSERT_TRUE(plain_size);
    EXPECT_EQ(*plain_size, kPlainBytes) << context;
    std::vector<uint8_t> back(kPlainBytes);
    ASSERT_TRUE(data.read(0, back));
    EXPECT_EQ(back, plaintext_) << context << ": the plaintext changed";
    auto marker = image_->get_metadata("rbd-luks.encrypt");
    ASSERT_TRUE(marker);
    EXPECT_FALSE(marker->has_value()) << context << ": the run's marker is left";
  }

  TempDir dir_;
  std::unique_ptr<RawImage> image_;
  std::vector<uint8_t> plaintext_;
};

TEST_F(EncryptionTest, MakesTheImageAVolumeWithTheSamePlaintext) {
  auto report = encrypt(*image_);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->data_bytes, kPlainBytes);
  EXPECT_EQ(report->bytes_written, kPlainBytes);
  expect_encrypted("after the run");
  // A second run finds a volume: nothing to do.
  auto again = encrypt(*image_);
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(Errc::usage)) << again.error().message();
}

TEST_F(EncryptionTest, RefusalsLeaveTheImageAsItWas) {
  const auto before = read_file(dir_.file("image"));
  FormatOptions too_large = format();
  too_large.data_offset = 4 << 20;
  auto small = encrypt_luks2(*image_, bytes_of("passphrase"), too_large, small_steps());
  ASSERT_FALSE(small);
  EXPECT_TRUE(small.error().is(Errc::usage)) << small.error().message();
  FormatOptions luks1 = format();
  luks1.version = 1;
  EXPECT_FALSE(encrypt_luks2(*image_, bytes_of("passphrase"), luks1, small_steps()));
  ASSERT_TRUE(image_->resize(kPlainBytes + 512));
  auto odd = encrypt(*image_);
  ASSERT_FALSE(odd);
  EXPECT_TRUE(odd.error().is(Errc::usage)) << odd.error().message();
  ASSERT_TRUE(image_->resize(kPlainBytes));
  EXPECT_EQ(read_file(dir_.file("image")), before);
  auto marker = image_->get_metadata("rbd-luks.encrypt");
  ASSERT_TRUE(marker);
  EXPECT_FALSE(marker->has_value());
}

TEST_F(EncryptionTest, EveryCrashPointResumesToTheSamePlaintext) {
  const auto start = read_file(dir_.file("image"));
  CrashPoints points;
  points.run = [this](RawImage& image) { return encrypt(image); };
  points.put_back = [&] {
    ASSERT_TRUE(image_->remove_metadata("rbd-luks.encrypt"));
    ASSERT_TRUE(image_->resize(kPlainBytes));
    write_file(dir_.file("image"), start);
  };
  points.expect_finished = [this](const std::string& context) { expect_encrypted(context); };
  points.min_changes = 30;
  check_crash_points(*image_, points);
}

}  // namespace
}  // namespace rbdluks
