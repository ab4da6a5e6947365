// Reencryption on image files: the result (plaintext kept, new key, keyslots), the refusals that
// leave the image as it was, and crash points: the run dies (or one change fails) at every change
// it makes, with any of the writes not yet flushed lost, and a second run must then finish with the
// plaintext unchanged byte for byte.
#include "reencryption.h"

#include <gtest/gtest.h>

#include "file_image.h"
#include "hotzone_checksums.h"
#include "luks2_header.h"
#include "luks2_reencrypt_state.h"
#include "luks_volume.h"
#include "reencrypt_fixture.h"
#include "test_support.h"

namespace rbdluks {
namespace {

class ReencryptionTest : public ReencryptFixture {
 protected:
  std::unique_ptr<RawImage> make_image(uint64_t size) override {
    auto image = create_file_image(dir_.file("image"), size);
    EXPECT_TRUE(image) << image.error().message();
    return image ? std::move(*image) : nullptr;
  }

  TempDir dir_;
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

// A stop asked for before the header records the run (during the keyslots' KDFs) leaves the
// volume as it was: the same header, the same data. (The new keyslots' material went to keyslot
// areas no header refers to.)
TEST_F(ReencryptionTest, StopBeforeTheRunIsRecordedLeavesTheVolume) {
  make_volume();
  const auto before = contents();
  ReencryptOptions options = small_steps();
  options.stop_requested = [] { return true; };
  auto stopped = reencrypt(*image_, {"first", "second"}, options);
  ASSERT_FALSE(stopped);
  EXPECT_NE(stopped.error().message().find("nothing changed"), std::string::npos) << stopped.error().message();
  const auto after = contents();
  ASSERT_EQ(after.size(), before.size());
  const auto same = [&](uint64_t from, uint64_t to) {
    return std::equal(before.begin() + static_cast<std::ptrdiff_t>(from),
                      before.begin() + static_cast<std::ptrdiff_t>(to),
                      after.begin() + static_cast<std::ptrdiff_t>(from));
  };
  EXPECT_TRUE(same(0, 4096)) << "the header changed";
  EXPECT_TRUE(same(kDataOffset, before.size())) << "the data changed";
  auto volume = load_luks(*image_);
  ASSERT_TRUE(volume);
  EXPECT_TRUE((*volume)->supported());
}

TEST_F(ReencryptionTest, StopsBetweenStepsAndResumes) {
  make_volume();
  ReencryptOptions options = small_steps();
  int polls = 0;
  // The first poll comes before the header records the run, the next ones before each step.
  options.stop_requested = [&] { return ++polls > 3; };
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

TEST_F(ReencryptionTest, EveryCrashPointResumesToTheSamePlaintext) {
  make_volume();
  check_every_crash_point(true);
}

// 512-byte sectors in 4096-byte checksum blocks, with holes among them: a block that holds both is
// written in one piece, or a crash between two pieces would leave it neither old nor new.
TEST_F(ReencryptionTest, EveryCrashPointResumesWith512ByteSectorsAndHoles) {
  make_volume(512, true);
  check_every_crash_point(true);
}

// A new sector size: 4096-byte sectors (with holes) become 512-byte ones, decrypted in the old
// size and encrypted in the new, block by block.
TEST_F(ReencryptionTest, EveryCrashPointResumesChangingTheSectorSize) {
  make_volume(4096, true);
  ReencryptOptions options = small_steps();
  options.sector_size = 512;
  check_every_crash_point(false, options);
}

// The head checksum (what the command line picks on RBD) sorts old blocks from new after a crash as
// the whole-block hash does: 512-byte sectors with holes, so that a block's head may be a hole and
// the rest data, and the header names the hash while the run is under way.
TEST_F(ReencryptionTest, EveryCrashPointResumesWithHeadChecksums) {
  make_volume(512, true);
  ReencryptOptions options = small_steps();
  options.checksum_hash = kHeadChecksumHash;
  check_every_crash_point(false, options);
  ReencryptOptions stopping = options;
  stopping.stop_requested = [polls = 0]() mutable { return ++polls > 1; };  // before the first step
  ASSERT_FALSE(reencrypt(*image_, {"first", "second"}, stopping));
  auto loaded = read_luks2_header(*image_);
  ASSERT_TRUE(loaded);
  ASSERT_EQ(loaded->header.metadata.reencrypt_keyslots.size(), 1u);
  EXPECT_EQ(loaded->header.metadata.reencrypt_keyslots.begin()->second.hash, kHeadChecksumHash);
}

TEST_F(ReencryptionTest, RefusesAnUnknownChecksumHash) {
  make_volume();
  const auto before = contents();
  ReencryptOptions options = small_steps();
  options.checksum_hash = "crc32";
  auto refused = reencrypt(*image_, {"first", "second"}, options);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(Errc::usage)) << refused.error().message();
  EXPECT_EQ(contents(), before);
}

}  // namespace
}  // namespace rbdluks
