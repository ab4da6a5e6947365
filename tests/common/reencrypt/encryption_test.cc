// In-place encryption on image files: the result (the plaintext behind a LUKS2 header at the data
// offset, the image cut back to plaintext + header), the refusals that leave the image as it was,
// and crash points: the run dies (or one change fails) at every change it makes, with any of the
// writes not yet flushed lost, and a second run must then finish with the same plaintext.
#include "encryption.h"

#include <gtest/gtest.h>

#include "encrypt_fixture.h"
#include "file_image.h"
#include "test_support.h"

namespace rbdluks {
namespace {

class EncryptionTest : public EncryptFixture {
 protected:
  std::unique_ptr<RawImage> make_image(uint64_t size) override {
    auto image = create_file_image(dir_.file("image"), size);
    EXPECT_TRUE(image) << image.error().message();
    return image ? std::move(*image) : nullptr;
  }

  TempDir dir_;
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
  const auto before = contents();
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
  EXPECT_EQ(contents(), before);
  auto marker = image_->get_metadata("rbd-luks.encrypt");
  ASSERT_TRUE(marker);
  EXPECT_FALSE(marker->has_value());
}

TEST_F(EncryptionTest, EveryCrashPointResumesToTheSamePlaintext) { check_every_crash_point(true); }

}  // namespace
}  // namespace rbdluks
