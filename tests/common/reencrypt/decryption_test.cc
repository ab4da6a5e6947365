// In-place decryption on image files (the cases: decrypt_fixture.h): the result, the refusals that
// leave the image as it was, a stop and a resume, and crash points: the run dies (or one change
// fails) at every change it makes, with any of the writes not yet flushed lost, and a second run
// must then finish with the same plaintext.
#include "decryption.h"

#include <gtest/gtest.h>

#include "crash_points.h"
#include "decrypt_fixture.h"
#include "encryption.h"
#include "file_image.h"
#include "luks_volume.h"
#include "test_support.h"

namespace rbdluks {
namespace {

class DecryptionTest : public DecryptFixture, public ::testing::WithParamInterface<DecryptCase> {
 protected:
  std::unique_ptr<RawImage> make_image(uint64_t size) override {
    write_file(dir_.file("image"), std::vector<uint8_t>(size, 0));
    auto image = open_file_image(dir_.file("image"), OpenMode::read_write);
    EXPECT_TRUE(image) << image.error().message();
    return image ? std::move(*image) : nullptr;
  }
  void SetUp() override { make_volume(GetParam()); }

  TempDir dir_;
};

TEST_P(DecryptionTest, LeavesThePlaintextAlone) {
  auto report = decrypt(*image_);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->data_bytes, GetParam().data_bytes);
  EXPECT_FALSE(report->resumed);
  expect_decrypted("after the run");
  // No volume is left to decrypt: what the plaintext starts with (a LUKS magic of an unknown
  // version) is refused, and nothing changes.
  auto again = decrypt(*image_);
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(Errc::unsupported)) << again.error().message();
  expect_decrypted("after a second run");
}

TEST_P(DecryptionTest, RefusalsLeaveTheImageAsItWas) {
  auto wrong = decrypt(*image_, "wrong");
  ASSERT_FALSE(wrong);
  EXPECT_TRUE(wrong.error().is(Errc::bad_key)) << wrong.error().message();
  EXPECT_EQ(contents(), start_);
  auto started = decryption_started(*image_);
  ASSERT_TRUE(started);
  EXPECT_FALSE(*started);
  // An encryption in place that has not finished is finished first.
  ASSERT_TRUE(image_->set_metadata("rbd-luks.encrypt", R"({"plaintext_size":0,"shift":0,"moved":false})"));
  auto encrypting = decrypt(*image_);
  ASSERT_FALSE(encrypting);
  EXPECT_TRUE(encrypting.error().is(Errc::usage)) << encrypting.error().message();
  EXPECT_EQ(contents(), start_);
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

// A snapshot rollback between two runs takes the data back but not the image metadata (RBD keeps
// it per image): the rerun goes on from where the data says, not from the marker.
TEST_P(DecryptionTest, ResumesFromTheDataAfterARollback) {
  const auto run_steps = [&](int count) {
    ReencryptOptions options = small_steps();
    int steps = 0;
    options.progress = [&steps](uint64_t, uint64_t) { ++steps; };
    options.stop_requested = [&steps, count] { return steps == count; };
    return decrypt(*image_, "passphrase", options);
  };
  if (GetParam().data_bytes < 3 * std::min(small_steps().hotzone_bytes, GetParam().data_offset)) {
    GTEST_SKIP() << "fewer than three hotzones";
  }
  ASSERT_FALSE(run_steps(1));
  const auto snapshot = contents();
  ASSERT_FALSE(run_steps(1));  // one more step, recorded in the marker
  ASSERT_TRUE(image_->resize(snapshot.size()));
  ASSERT_TRUE(image_->write(0, snapshot));  // the rollback
  auto resumed = decrypt(*image_);
  ASSERT_TRUE(resumed) << resumed.error().message();
  expect_decrypted("after the rollback");

  // A rollback to before the data recorded anything is refused, and changes nothing.
  put_back();
  ASSERT_FALSE(run_steps(1));
  const auto marker = image_->get_metadata(kDecryptionMarkerKey);
  ASSERT_TRUE(marker && *marker);
  put_back();
  ASSERT_TRUE(image_->set_metadata(kDecryptionMarkerKey, **marker));
  auto refused = decrypt(*image_);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("holds no record of the decryption's progress"), std::string::npos)
      << refused.error().message();
  EXPECT_TRUE(contents() == start_);
}

TEST_P(DecryptionTest, EveryCrashPointResumesToTheSamePlaintext) { check_every_crash_point(true); }

INSTANTIATE_TEST_SUITE_P(Volumes, DecryptionTest,
                         ::testing::Values(DecryptCase{2, 4096, 256 << 10, 768 << 10, false, false},
                                           DecryptCase{2, 4096, 256 << 10, 1280 << 10, true, true},
                                           DecryptCase{1, 512, 2 << 20, (700 << 10) + 512, true, false}),
                         [](const ::testing::TestParamInfo<DecryptCase>& param_info) {
                           return "Luks" + std::to_string(param_info.param.version) + "Sector" +
                                  std::to_string(param_info.param.sector_size) +
                                  (param_info.param.holes ? "WithHoles" : "") + (param_info.param.gap ? "AndAGap" : "");
                         });

}  // namespace
}  // namespace rbdluks
