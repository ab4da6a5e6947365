// The reencryption cases on any RawImage (reencrypt_fixture.h).
#include "reencrypt_fixture.h"

#include "crash_points.h"
#include "luks_volume.h"
#include "sector_codec.h"
#include "test_support.h"
#include "xts_cipher.h"

namespace rbdluks {
namespace {

KdfRequest fast_kdf() {
  KdfRequest kdf;
  kdf.type = KdfType::pbkdf2;
  kdf.force_iterations = 1000;
  return kdf;
}

}  // namespace

void ReencryptFixture::make_volume(uint32_t sector_size, bool holes) {
  FormatOptions options;
  options.key_bytes = 32;
  options.sector_size = sector_size;
  options.data_offset = kDataOffset;
  options.kdf = fast_kdf();
  old_sector_size_ = sector_size;
  old_key_ = random_bytes(32);
  auto volume = format_luks(*image_, options, old_key_, bytes_of("first"));
  ASSERT_TRUE(volume) << volume.error().message();
  ASSERT_TRUE((*volume)->add_keyslot(old_key_, bytes_of("second"), fast_kdf()));
  plaintext_ = random_bytes(kDataBytes);
  auto data = data_path(old_key_, sector_size);
  for (uint64_t s = 0; s < kDataBytes; s += sector_size) {
    const auto sector = std::span(plaintext_).subspan(s, sector_size);
    if (holes && s / sector_size % 7 == 3) {
      std::fill(sector.begin(), sector.end(), uint8_t{0});
    } else {
      ASSERT_TRUE(data->write(s, sector));
    }
  }
  ASSERT_TRUE(data->flush());
}

std::unique_ptr<EncryptedImage> ReencryptFixture::data_path(std::span<const uint8_t> key, uint32_t sector_size) {
  auto cipher = make_xts_cipher(key);
  EXPECT_TRUE(cipher);
  return std::make_unique<EncryptedImage>(*image_, std::shared_ptr<const XtsCipher>(std::move(*cipher)), kDataOffset,
                                          sector_size, std::nullopt);
}

ReencryptOptions ReencryptFixture::small_steps() { return crash_point_steps(kHotzone); }

Result<ReencryptReport> ReencryptFixture::reencrypt(RawImage& image, const std::vector<std::string>& passphrases,
                                                    const ReencryptOptions& options) {
  std::vector<std::span<const uint8_t>> spans;
  spans.reserve(passphrases.size());
  for (const auto& p : passphrases) spans.push_back(bytes_of(p));
  return reencrypt_luks2(image, spans, options);
}

void ReencryptFixture::expect_reencrypted(const std::vector<std::string>& opening, const std::string& context) {
  auto volume = load_luks(*image_);
  ASSERT_TRUE(volume) << context << ": " << volume.error().message();
  ASSERT_TRUE((*volume)->supported()) << context << ": " << (*volume)->supported().error().message();
  std::vector<uint8_t> new_key;
  for (const auto& passphrase : opening) {
    auto key = (*volume)->open(bytes_of(passphrase));
    ASSERT_TRUE(key) << context << ": " << passphrase << ": " << key.error().message();
    new_key.assign(key->volume_key.span().begin(), key->volume_key.span().end());
  }
  EXPECT_NE(new_key, old_key_) << context;
  std::vector<uint8_t> back(kDataBytes);
  ASSERT_TRUE(data_path(new_key, (*volume)->layout().sector_size)->read(0, back));
  EXPECT_TRUE(back == plaintext_) << context << ": the plaintext changed";
  std::vector<uint8_t> under_old(kDataBytes);
  ASSERT_TRUE(data_path(old_key_, old_sector_size_)->read(0, under_old));
  for (uint64_t s = 0; s < kDataBytes; s += 4096) {
    if (is_zero(std::span(plaintext_).subspan(s, 4096))) continue;  // a hole, which stays one
    ASSERT_FALSE(std::equal(under_old.begin() + s, under_old.begin() + s + 4096, plaintext_.begin() + s))
        << context << ": the old key still decrypts the sector at " << s;
  }
}

std::vector<uint8_t> ReencryptFixture::contents() { return whole_image(*image_); }

void ReencryptFixture::put_back(const std::vector<uint8_t>& bytes) {
  ASSERT_TRUE(image_->write(0, bytes));
  ASSERT_TRUE(image_->flush());
}

void ReencryptFixture::check_every_crash_point(bool thorough, const ReencryptOptions& options) {
  const auto start = contents();
  CrashPoints points;
  points.run = [this, &options](RawImage& image) { return reencrypt(image, {"first", "second"}, options); };
  points.put_back = [this, &start] { put_back(start); };
  points.expect_finished = [this](const std::string& context) { expect_reencrypted({"first", "second"}, context); };
  points.min_changes = 40;
  points.thorough = thorough;
  check_crash_points(*image_, points);
}

}  // namespace rbdluks
