// Reencryption on image files: the result (plaintext kept, new key, keyslots), the refusals that
// leave the image as it was, and crash points: the run dies (or one change fails) at every change
// it makes, with any of the writes not yet flushed lost, and a second run must then finish with the
// plaintext unchanged byte for byte.
#include "reencryption.h"

#include <gtest/gtest.h>

#include "crash_point_steps.h"
#include "encrypted_image.h"
#include "fault_injecting_image.h"
#include "file_image.h"
#include "luks2_header.h"
#include "luks2_reencrypt_state.h"
#include "luks_volume.h"
#include "test_support.h"
#include "xts_cipher.h"

namespace rbdluks {
namespace {

constexpr uint64_t kDataOffset = 1 << 20;
constexpr uint64_t kDataBytes = 256 << 10;
constexpr uint64_t kHotzone = 64 << 10;

KdfRequest fast_kdf() {
  KdfRequest kdf;
  kdf.type = KdfType::pbkdf2;
  kdf.force_iterations = 1000;
  return kdf;
}

class ReencryptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto image = create_file_image(dir_.file("image"), kDataOffset + kDataBytes);
    ASSERT_TRUE(image) << image.error().message();
    image_ = std::move(*image);
  }

  // A volume with keyslots for "first" and "second" and random plaintext in every sector; with
  // holes, every seventh sector is never written (all-zero ciphertext, read as zeros), so that
  // checksum blocks hold both.
  void make_volume(uint32_t sector_size = 4096, bool holes = false) {
    FormatOptions options;
    options.key_bytes = 32;
    options.sector_size = sector_size;
    options.data_offset = kDataOffset;
    options.kdf = fast_kdf();
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

  std::unique_ptr<EncryptedImage> data_path(std::span<const uint8_t> key, uint32_t sector_size) {
    auto cipher = make_xts_cipher(key);
    EXPECT_TRUE(cipher);
    return std::make_unique<EncryptedImage>(*image_, std::shared_ptr<const XtsCipher>(std::move(*cipher)), kDataOffset,
                                            sector_size, std::nullopt);
  }

  static ReencryptOptions small_steps() { return crash_point_steps(kHotzone); }

  Result<ReencryptReport> reencrypt(RawImage& image, const std::vector<std::string>& passphrases,
                                    const ReencryptOptions& options) {
    std::vector<std::span<const uint8_t>> spans;
    spans.reserve(passphrases.size());
    for (const auto& p : passphrases) spans.push_back(bytes_of(p));
    return reencrypt_luks2(image, spans, options);
  }

  // The volume opens with each passphrase to a key other than the old one, its data reads back as
  // the plaintext, and no sector's ciphertext is what the old key made of it.
  void expect_reencrypted(const std::vector<std::string>& opening, const std::string& context) {
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
    EXPECT_EQ(back, plaintext_) << context << ": the plaintext changed";
    std::vector<uint8_t> under_old(kDataBytes);
    ASSERT_TRUE(data_path(old_key_, (*volume)->layout().sector_size)->read(0, under_old));
    for (uint64_t s = 0; s < kDataBytes; s += 4096) {
      ASSERT_FALSE(std::equal(under_old.begin() + s, under_old.begin() + s + 4096, plaintext_.begin() + s))
          << context << ": the old key still decrypts the sector at " << s;
    }
  }

  std::vector<uint8_t> contents() { return read_file(dir_.file("image")); }
  void check_every_crash_point();

  TempDir dir_;
  std::unique_ptr<RawImage> image_;
  std::vector<uint8_t> old_key_, plaintext_;
};

TEST_F(ReencryptionTest, RewritesEverySectorAndKeepsEveryPassphrase) {
  make_volume();
  auto report = reencrypt(*image_, {"first", "second"}, small_steps());
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_FALSE(report->resumed);
  EXPECT_EQ(report->bytes_written, kDataBytes);
  EXPECT_EQ(report->steps, kDataBytes / kHotzone);
  EXPECT_EQ(report->new_keyslots, (std::vector<int>{2, 3}));  // as cryptsetup numbers them
  expect_reencrypted({"first", "second"}, "after the run");
  auto loaded = read_luks2_header(*image_);
  ASSERT_TRUE(loaded);
  EXPECT_FALSE(luks2_reencrypt_in_progress(loaded->header.metadata));
  EXPECT_EQ(loaded->header.metadata.keyslots.size(), 2u);
  EXPECT_EQ(loaded->header.metadata.digests.size(), 1u);
}

TEST_F(ReencryptionTest, ChangesTheKeySizeWith512ByteSectors) {
  make_volume(512);
  ReencryptOptions options = small_steps();
  options.key_bytes = 64;
  ASSERT_TRUE(reencrypt(*image_, {"first", "second"}, options));
  expect_reencrypted({"first", "second"}, "512-byte sectors");
  auto volume = load_luks(*image_);
  ASSERT_TRUE(volume);
  EXPECT_EQ((*volume)->layout().key_bytes, 64u);
  EXPECT_EQ((*volume)->layout().sector_size, 512u);
}

TEST_F(ReencryptionTest, RefusalsLeaveTheImageAsItWas) {
  make_volume();
  const auto before = contents();
  auto missing = reencrypt(*image_, {"first"}, small_steps());
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(Errc::usage)) << missing.error().message();
  EXPECT_NE(missing.error().message().find("keyslot 1"), std::string::npos) << missing.error().message();
  auto wrong = reencrypt(*image_, {"third"}, small_steps());
  ASSERT_FALSE(wrong);
  EXPECT_TRUE(wrong.error().is(Errc::bad_key)) << wrong.error().message();
  ReencryptOptions bad_cipher = small_steps();
  bad_cipher.cipher = "twofish-xts-plain64";
  EXPECT_FALSE(reencrypt(*image_, {"first", "second"}, bad_cipher));
  EXPECT_EQ(contents(), before);
}

TEST_F(ReencryptionTest, ForceDropsTheKeyslotsOfPassphrasesNotGiven) {
  make_volume();
  ReencryptOptions options = small_steps();
  options.drop_unopened_keyslots = true;
  auto report = reencrypt(*image_, {"second"}, options);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->dropped_keyslots, (std::vector<int>{0}));
  expect_reencrypted({"second"}, "forced");
  auto volume = load_luks(*image_);
  ASSERT_TRUE(volume);
  EXPECT_FALSE((*volume)->open(bytes_of("first")));
}

TEST_F(ReencryptionTest, StopsBetweenStepsAndResumes) {
  make_volume();
  ReencryptOptions options = small_steps();
  int steps = 0;
  options.stop_requested = [&] { return ++steps > 2; };
  auto stopped = reencrypt(*image_, {"first", "second"}, options);
  ASSERT_FALSE(stopped);
  EXPECT_NE(stopped.error().message().find("run the same command again"), std::string::npos);
  auto volume = load_luks(*image_);
  ASSERT_TRUE(volume);
  EXPECT_FALSE((*volume)->supported()) << "a half-reencrypted volume must not open";
  auto loaded = read_luks2_header(*image_);
  ASSERT_TRUE(loaded);
  auto state = luks2_reencrypt_state(loaded->header.metadata, kDataOffset + kDataBytes);
  ASSERT_TRUE(state) << state.error().message();
  EXPECT_EQ(state->progress, 2 * kHotzone);
  // A resume needs one passphrase of each key only: both keys are in the new keyslots' twins.
  auto resumed = reencrypt(*image_, {"second"}, small_steps());
  ASSERT_TRUE(resumed) << resumed.error().message();
  EXPECT_TRUE(resumed->resumed);
  EXPECT_EQ(resumed->bytes_written, kDataBytes - 2 * kHotzone);
  expect_reencrypted({"first", "second"}, "resumed");
}

// Every change of the run, failed once (an I/O error the run reports) or as a crash that keeps
// some of the unflushed writes (none, all, the first, every other); then a second run on the real
// image finishes the job.
void ReencryptionTest::check_every_crash_point() {
  const auto start = contents();
  uint64_t changes = 0;
  {
    FaultInjectingImage counting(*image_, 0, FaultInjectingImage::Mode::crash);
    ASSERT_TRUE(reencrypt(counting, {"first", "second"}, small_steps()));
    changes = counting.changes();
  }
  ASSERT_GT(changes, 40u);
  for (uint64_t n = 1; n <= changes; ++n) {
    for (const auto mode : {FaultInjectingImage::Mode::fail_once, FaultInjectingImage::Mode::crash}) {
      std::vector<std::vector<bool>> keeps = {{}};
      if (mode == FaultInjectingImage::Mode::crash) {
        write_file(dir_.file("image"), start);
        FaultInjectingImage probe(*image_, n, mode);
        static_cast<void>(reencrypt(probe, {"first", "second"}, small_steps()));
        const size_t k = probe.unflushed_writes();
        keeps = {std::vector<bool>(k, false), std::vector<bool>(k, true)};
        if (k > 1) {
          std::vector<bool> first_only(k, false);
          std::vector<bool> every_other(k, false);
          first_only[0] = true;
          for (size_t i = 0; i < k; i += 2) every_other[i] = true;
          keeps.push_back(first_only);
          keeps.push_back(every_other);
        }
      }
      for (const auto& keep : keeps) {
        write_file(dir_.file("image"), start);
        const std::string context = std::string(mode == FaultInjectingImage::Mode::crash ? "crash" : "error") +
                                    " at change " + std::to_string(n) + " of " + std::to_string(changes) +
                                    ", unflushed kept " + std::to_string(std::count(keep.begin(), keep.end(), true));
        {
          FaultInjectingImage faulty(*image_, n, mode);
          EXPECT_FALSE(reencrypt(faulty, {"first", "second"}, small_steps())) << context;
          if (mode == FaultInjectingImage::Mode::crash) {
            ASSERT_TRUE(faulty.keep_unflushed(keep)) << context;
          }
        }
        auto finished = reencrypt(*image_, {"first", "second"}, small_steps());
        ASSERT_TRUE(finished) << context << ": " << finished.error().message();
        expect_reencrypted({"first", "second"}, context);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST_F(ReencryptionTest, EveryCrashPointResumesToTheSamePlaintext) {
  make_volume();
  check_every_crash_point();
}

// 512-byte sectors in 4096-byte checksum blocks, with holes among them: a block that holds both is
// written in one piece, or a crash between two pieces would leave it neither old nor new.
TEST_F(ReencryptionTest, EveryCrashPointResumesWith512ByteSectorsAndHoles) {
  make_volume(512, true);
  check_every_crash_point();
}

}  // namespace
}  // namespace rbdluks
