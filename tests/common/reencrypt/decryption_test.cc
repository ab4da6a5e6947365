// In-place decryption on image files: the result (the plaintext alone, byte for byte, as long as
// the data segment), the refusals that leave the image as it was, a stop and a resume, and crash
// points: the run dies (or one change fails) at every change it makes, with any of the writes not
// yet flushed lost, and a second run must then finish with the same plaintext.
#include "decryption.h"

#include <gtest/gtest.h>

#include "crash_point_steps.h"
#include "encrypted_image.h"
#include "encryption.h"
#include "fault_injecting_image.h"
#include "file_image.h"
#include "luks_volume.h"
#include "test_support.h"
#include "xts_cipher.h"

namespace rbdluks {
namespace {

constexpr const char* kVolumeKey = "rbd-luks.key-ref";  // a key the run removes at its end

struct Case {
  int version;
  uint32_t sector_size;
  uint64_t data_offset;  // below the hotzone of small_steps(), which a step must not pass
  uint64_t data_bytes;  // LUKS1's is not a multiple of 4096
  bool holes;           // every seventh sector never written (all-zero ciphertext, plaintext zeros)
};

class DecryptionTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const Case& c = GetParam();
    write_file(dir_.file("image"), std::vector<uint8_t>(c.data_offset + c.data_bytes, 0));
    auto image = open_file_image(dir_.file("image"), OpenMode::read_write);
    ASSERT_TRUE(image) << image.error().message();
    image_ = std::move(*image);
    FormatOptions options;
    options.version = c.version;
    options.key_bytes = 32;
    options.sector_size = c.sector_size;
    options.data_offset = c.data_offset;
    options.kdf.type = KdfType::pbkdf2;
    options.kdf.force_iterations = 1000;
    const auto key = random_bytes(32);
    auto volume = format_luks(*image_, options, key, bytes_of("passphrase"));
    ASSERT_TRUE(volume) << volume.error().message();
    auto cipher = make_xts_cipher(key);
    ASSERT_TRUE(cipher);
    EncryptedImage data(*image_, std::shared_ptr<const XtsCipher>(std::move(*cipher)), c.data_offset, c.sector_size,
                        std::nullopt);
    plaintext_ = random_bytes(c.data_bytes);
    for (uint64_t s = 0; s < c.data_bytes; s += c.sector_size) {
      const auto sector = std::span(plaintext_).subspan(s, c.sector_size);
      if (c.holes && s / c.sector_size % 7 == 3) {
        std::fill(sector.begin(), sector.end(), uint8_t{0});
      } else {
        ASSERT_TRUE(data.write(s, sector));
      }
    }
    ASSERT_TRUE(data.flush());
    ASSERT_TRUE(image_->set_metadata(kVolumeKey, "file:/nowhere"));
    start_ = read_file(dir_.file("image"));
  }

  static ReencryptOptions small_steps() { return crash_point_steps(512 << 10); }

  static Result<ReencryptReport> decrypt(RawImage& image, const std::string& passphrase = "passphrase",
                                         const ReencryptOptions& options = small_steps()) {
    const auto secret = [&passphrase]() -> Result<SecureBuffer> {
      SecureBuffer buffer(passphrase.size());
      std::copy(passphrase.begin(), passphrase.end(), buffer.span().begin());
      return buffer;
    };
    return decrypt_volume(image, secret, options, {kVolumeKey});
  }

  // The image is the plaintext alone, and keeps no state of the run nor the volume's metadata.
  void expect_decrypted(const std::string& context) {
    EXPECT_EQ(read_file(dir_.file("image")), plaintext_) << context << ": not the plaintext";
    for (const char* key : {kDecryptionMarkerKey, kVolumeKey}) {
      auto value = image_->get_metadata(key);
      ASSERT_TRUE(value);
      EXPECT_FALSE(value->has_value()) << context << ": " << key << " is left";
    }
  }

  void put_back() {
    ASSERT_TRUE(image_->remove_metadata(kDecryptionMarkerKey));
    ASSERT_TRUE(image_->set_metadata(kVolumeKey, "file:/nowhere"));
    write_file(dir_.file("image"), start_);
  }

  TempDir dir_;
  std::unique_ptr<RawImage> image_;
  std::vector<uint8_t> plaintext_, start_;
};

TEST_P(DecryptionTest, LeavesThePlaintextAlone) {
  auto report = decrypt(*image_);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->data_bytes, GetParam().data_bytes);
  EXPECT_FALSE(report->resumed);
  expect_decrypted("after the run");
  // No volume is left to decrypt.
  auto again = decrypt(*image_);
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(Errc::bad_header)) << again.error().message();
}

TEST_P(DecryptionTest, RefusalsLeaveTheImageAsItWas) {
  auto wrong = decrypt(*image_, "wrong");
  ASSERT_FALSE(wrong);
  EXPECT_TRUE(wrong.error().is(Errc::bad_key)) << wrong.error().message();
  EXPECT_EQ(read_file(dir_.file("image")), start_);
  auto started = decryption_started(*image_);
  ASSERT_TRUE(started);
  EXPECT_FALSE(*started);
  // An encryption in place that has not finished is finished first.
  ASSERT_TRUE(image_->set_metadata("rbd-luks.encrypt", R"({"plaintext_size":0,"shift":0,"moved":false})"));
  auto encrypting = decrypt(*image_);
  ASSERT_FALSE(encrypting);
  EXPECT_TRUE(encrypting.error().is(Errc::usage)) << encrypting.error().message();
  EXPECT_EQ(read_file(dir_.file("image")), start_);
}

// Stopped after its first step: no reader takes the half-plain image for a volume (not even when the
// plaintext at the start is a LUKS header itself), nothing formats or encrypts it, and a rerun ends it.
TEST_P(DecryptionTest, StopsBetweenStepsAndResumes) {
  ReencryptOptions options = small_steps();
  int steps = 0;
  options.progress = [&steps](uint64_t, uint64_t) { ++steps; };
  options.stop_requested = [&steps] { return steps == 1; };
  auto stopped = decrypt(*image_, "passphrase", options);
  ASSERT_FALSE(stopped);
  EXPECT_TRUE(stopped.error().is(Errc::failure)) << stopped.error().message();
  auto started = decryption_started(*image_);
  ASSERT_TRUE(started && *started);
  std::vector<uint8_t> magic(6);
  ASSERT_TRUE(image_->read(0, magic));
  EXPECT_EQ(magic, std::vector<uint8_t>(plaintext_.begin(), plaintext_.begin() + 6));
  ASSERT_TRUE(image_->write(0, bytes_of("LUKS\xba\xbe")));  // the plaintext is a volume of its own
  auto volume = load_luks(*image_);
  ASSERT_FALSE(volume);
  EXPECT_TRUE(volume.error().is(Errc::failure)) << volume.error().message();
  EXPECT_NE(volume.error().message().find("decryption in place has not finished"), std::string::npos)
      << volume.error().message();
  ASSERT_TRUE(image_->write(0, std::span(plaintext_).first(6)));
  FormatOptions format;
  format.kdf.type = KdfType::pbkdf2;
  format.kdf.force_iterations = 1000;
  EXPECT_FALSE(format_luks(*image_, format, random_bytes(64), bytes_of("other")));
  auto encrypting = encrypt_luks2(*image_, bytes_of("other"), format, small_steps());
  ASSERT_FALSE(encrypting);
  EXPECT_TRUE(encrypting.error().is(Errc::usage)) << encrypting.error().message();

  auto resumed = decrypt(*image_);
  ASSERT_TRUE(resumed) << resumed.error().message();
  EXPECT_TRUE(resumed->resumed);
  expect_decrypted("after the resume");
}

TEST_P(DecryptionTest, EveryCrashPointResumesToTheSamePlaintext) {
  uint64_t changes = 0;
  {
    FaultInjectingImage counting(*image_, 0, FaultInjectingImage::Mode::crash);
    ASSERT_TRUE(decrypt(counting));
    changes = counting.changes();
  }
  ASSERT_GT(changes, 20u);
  for (uint64_t n = 1; n <= changes; ++n) {
    for (const auto mode : {FaultInjectingImage::Mode::fail_once, FaultInjectingImage::Mode::crash}) {
      std::vector<std::vector<bool>> keeps = {{}};
      if (mode == FaultInjectingImage::Mode::crash) {
        put_back();
        FaultInjectingImage probe(*image_, n, mode);
        static_cast<void>(decrypt(probe));
        const size_t k = probe.unflushed_writes();
        keeps = {std::vector<bool>(k, false), std::vector<bool>(k, true)};
        if (k > 1) {
          std::vector<bool> every_other(k, false);
          for (size_t i = 0; i < k; i += 2) every_other[i] = true;
          keeps.push_back(every_other);
        }
      }
      for (const auto& keep : keeps) {
        put_back();
        const std::string context = std::string(mode == FaultInjectingImage::Mode::crash ? "crash" : "error") +
                                    " at change " + std::to_string(n) + " of " + std::to_string(changes) +
                                    ", unflushed kept " + std::to_string(std::count(keep.begin(), keep.end(), true));
        {
          FaultInjectingImage faulty(*image_, n, mode);
          EXPECT_FALSE(decrypt(faulty)) << context;
          if (mode == FaultInjectingImage::Mode::crash) {
            ASSERT_TRUE(faulty.keep_unflushed(keep)) << context;
          }
        }
        auto finished = decrypt(*image_);
        ASSERT_TRUE(finished) << context << ": " << finished.error().message();
        expect_decrypted(context);
        if (HasFatalFailure()) return;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Volumes, DecryptionTest,
                         ::testing::Values(Case{2, 4096, 256 << 10, 768 << 10, false},
                                           Case{2, 4096, 256 << 10, 768 << 10, true},
                                           Case{1, 512, 2 << 20, (700 << 10) + 512, true}),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           return "Luks" + std::to_string(param_info.param.version) + "Sector" +
                                  std::to_string(param_info.param.sector_size) + (param_info.param.holes ? "WithHoles" : "");
                         });

}  // namespace
}  // namespace rbdluks
