// The decryption cases on any RawImage (decrypt_fixture.h).
#include "decrypt_fixture.h"

#include "crash_points.h"
#include "decryption.h"
#include "encrypted_image.h"
#include "luks_volume.h"
#include "sector_codec.h"
#include "test_support.h"
#include "xts_cipher.h"

namespace rbdluks {

void DecryptFixture::make_volume(const DecryptCase& volume) {
  image_ = make_image(volume.data_offset + volume.data_bytes);
  ASSERT_TRUE(image_);
  FormatOptions options;
  options.version = volume.version;
  options.key_bytes = 32;
  options.sector_size = volume.sector_size;
  options.data_offset = volume.data_offset;
  options.kdf.type = KdfType::pbkdf2;
  options.kdf.force_iterations = 1000;
  const auto key = random_bytes(32);
  auto formatted = format_luks(*image_, options, key, bytes_of("passphrase"));
  ASSERT_TRUE(formatted) << formatted.error().message();
  auto cipher = make_xts_cipher(key);
  ASSERT_TRUE(cipher);
  EncryptedImage data(*image_, std::shared_ptr<const XtsCipher>(std::move(*cipher)), volume.data_offset,
                      volume.sector_size, std::nullopt);
  plaintext_ = random_bytes(volume.data_bytes);
  // The plaintext starts with a LUKS magic of its own (a guest's encryption), which a rerun must
  // not take for the volume's header once the first step has moved it to the start.
  const auto magic = bytes_of("LUKS\xba\xbe");
  std::copy(magic.begin(), magic.end(), plaintext_.begin());
  for (uint64_t s = 0; s < volume.data_bytes; s += volume.sector_size) {
    const auto sector = std::span(plaintext_).subspan(s, volume.sector_size);
    const bool in_gap = volume.gap && s >= volume.data_bytes / 5 && s < volume.data_bytes / 5 * 4;
    if ((volume.holes && s / volume.sector_size % 7 == 3) || in_gap) {
      std::fill(sector.begin(), sector.end(), uint8_t{0});
    } else {
      ASSERT_TRUE(data.write(s, sector));
    }
  }
  ASSERT_TRUE(data.flush());
  ASSERT_TRUE(image_->set_metadata(kVolumeKey, "file:/nowhere"));
  start_ = contents();
}

ReencryptOptions DecryptFixture::small_steps() { return crash_point_steps(512 << 10); }

Result<ReencryptReport> DecryptFixture::decrypt(RawImage& image, const std::string& passphrase,
                                                const ReencryptOptions& options) {
  const auto secret = [&passphrase]() -> Result<SecureBuffer> {
    SecureBuffer buffer(passphrase.size());
    std::copy(passphrase.begin(), passphrase.end(), buffer.span().begin());
    return buffer;
  };
  return decrypt_volume(image, secret, options, {kVolumeKey});
}

std::vector<uint8_t> DecryptFixture::contents() { return whole_image(*image_); }

void DecryptFixture::expect_decrypted(const std::string& context) {
  EXPECT_TRUE(contents() == plaintext_) << context << ": not the plaintext";
  for (const char* key : {kDecryptionMarkerKey, kVolumeKey}) {
    auto value = image_->get_metadata(key);
    ASSERT_TRUE(value);
    EXPECT_FALSE(value->has_value()) << context << ": " << key << " is left";
  }
}

void DecryptFixture::put_back() {
  ASSERT_TRUE(image_->remove_metadata(kDecryptionMarkerKey));
  ASSERT_TRUE(image_->set_metadata(kVolumeKey, "file:/nowhere"));
  ASSERT_TRUE(image_->resize(start_.size()));
  ASSERT_TRUE(image_->write_zeroes(0, start_.size()));
  // Runs of 4 KiB blocks that hold something are written; the rest stays a hole.
  constexpr uint64_t kBlock = 4096;
  const auto zero_at = [&](uint64_t b) {
    return is_zero(std::span(start_).subspan(b, std::min(kBlock, start_.size() - b)));
  };
  for (uint64_t b = 0; b < start_.size();) {
    if (zero_at(b)) {
      b += kBlock;
      continue;
    }
    uint64_t end = b;
    while (end < start_.size() && !zero_at(end)) end += kBlock;
    end = std::min<uint64_t>(end, start_.size());
    ASSERT_TRUE(image_->write(b, std::span(start_).subspan(b, end - b)));
    b = end;
  }
  ASSERT_TRUE(image_->flush());
}

void DecryptFixture::check_every_crash_point(bool thorough) {
  CrashPoints points;
  points.run = [](RawImage& image) { return decrypt(image); };
  points.put_back = [this] { put_back(); };
  points.expect_finished = [this](const std::string& context) { expect_decrypted(context); };
  points.thorough = thorough;
  check_crash_points(*image_, points);
}

}  // namespace rbdluks
