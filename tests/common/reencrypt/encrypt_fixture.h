// The in-place encryption cases on any RawImage, shared by the tests on image files
// (encryption_test.cc) and on RBD images (tests/plugin/rbd/reencrypt_crash_points_rbd_test.cc): a
// plain image of random bytes with every fifth 64 KiB never written (a hole, which on RBD becomes a
// hole of the volume too), the run, and what must hold after it: the image is the plaintext behind
// a LUKS2 header, cut back to plaintext + header, with no state of the run left.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "luks_volume.h"
#include "raw_image.h"
#include "reencryption.h"

namespace rbdluks {

class EncryptFixture : public ::testing::Test {
 protected:
  static constexpr uint64_t kShift = 1 << 20;
  static constexpr uint64_t kPlainBytes = 2 << 20;

  // A blank image of size bytes, kept open for the whole test.
  virtual std::unique_ptr<RawImage> make_image(uint64_t size) = 0;

  void SetUp() override;

  static FormatOptions format();
  static ReencryptOptions small_steps();
  Result<ReencryptReport> encrypt(RawImage& image);
  void expect_encrypted(const std::string& context);
  // Every change of the run failed (thorough: also as an I/O error), then a second run finishes.
  void check_every_crash_point(bool thorough);

  // The whole raw image.
  std::vector<uint8_t> contents();
  // The plain image as SetUp wrote it, the run's marker gone.
  void put_back();

  std::unique_ptr<RawImage> image_;
  std::vector<uint8_t> plaintext_;
};

}  // namespace rbdluks
