// The in-place encryption cases (encrypt_fixture.h).
#include "encrypt_fixture.h"

#include "crash_points.h"
#include "encrypted_image.h"
#include "encryption.h"
#include "luks_volume.h"
#include "test_support.h"
#include "xts_cipher.h"

namespace rbdluks {
namespace {

constexpr uint64_t kBlock = 4096;
constexpr const char* kMarker = "rbd-luks.encrypt";

// Every fifth 64 KiB: holes enough to take the hole paths, few enough to keep the changes countable.
bool is_hole(uint64_t block) { return block / 16 % 5 == 4; }

}  // namespace

void EncryptFixture::SetUp() {
  plaintext_ = random_bytes(kPlainBytes);
  for (uint64_t b = 0; b < kPlainBytes / kBlock; ++b) {
    if (is_hole(b)) std::fill_n(plaintext_.begin() + static_cast<std::ptrdiff_t>(b * kBlock), kBlock, uint8_t{0});
  }
  image_ = make_image(kPlainBytes);
  ASSERT_NE(image_, nullptr);
  put_back();
}

void EncryptFixture::put_back() {
  ASSERT_TRUE(image_->remove_metadata(kMarker));
  ASSERT_TRUE(image_->resize(kPlainBytes));
  ASSERT_TRUE(image_->write_zeroes(0, kPlainBytes));
  // The runs of blocks between holes, one write each.
  for (uint64_t b = 0; b < kPlainBytes / kBlock;) {
    uint64_t end = b;
    while (end < kPlainBytes / kBlock && !is_hole(end)) ++end;
    if (end > b) {
      ASSERT_TRUE(image_->write(b * kBlock, std::span(plaintext_).subspan(b * kBlock, (end - b) * kBlock)));
    }
    b = end + 1;
  }
}

FormatOptions EncryptFixture::format() {
  FormatOptions options;
  options.key_bytes = 32;
  options.data_offset = kShift;
  options.kdf.type = KdfType::pbkdf2;
  options.kdf.force_iterations = 1000;
  return options;
}

ReencryptOptions EncryptFixture::small_steps() { return crash_point_steps(512 << 10); }

Result<ReencryptReport> EncryptFixture::encrypt(RawImage& image) {
  return encrypt_luks2(image, bytes_of("passphrase"), format(), small_steps());
}

std::vector<uint8_t> EncryptFixture::contents() { return whole_image(*image_); }

void EncryptFixture::expect_encrypted(const std::string& context) {
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
  auto marker = image_->get_metadata(kMarker);
  ASSERT_TRUE(marker);
  EXPECT_FALSE(marker->has_value()) << context << ": the run's marker is left";
}

void EncryptFixture::check_every_crash_point(bool thorough) {
  CrashPoints points;
  points.run = [this](RawImage& image) { return encrypt(image); };
  points.put_back = [this] { put_back(); };
  points.expect_finished = [this](const std::string& context) { expect_encrypted(context); };
  points.min_changes = 30;
  points.thorough = thorough;
  check_crash_points(*image_, points);
}

}  // namespace rbdluks
