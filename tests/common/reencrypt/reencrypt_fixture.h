// The reencryption cases on any RawImage, shared by the tests on image files (reencryption_test.cc)
// and on RBD images (tests/plugin/rbd/reencrypt_crash_points_rbd_test.cc): a volume with two
// keyslots and random plaintext (with holes, if asked), the run, and what must hold after it: each
// passphrase opens a new key, the plaintext is the same byte for byte, and the old key decrypts no
// sector any more. check_every_crash_point() fails the run at every change it makes
// (FaultInjectingImage) and checks that a second run finishes it.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "encrypted_image.h"
#include "raw_image.h"
#include "reencryption.h"

namespace rbdluks {

class ReencryptFixture : public ::testing::Test {
 protected:
  static constexpr uint64_t kDataOffset = 1 << 20;
  static constexpr uint64_t kDataBytes = 256 << 10;
  static constexpr uint64_t kHotzone = 64 << 10;

  // A blank image of size bytes, kept open for the whole test.
  virtual std::unique_ptr<RawImage> make_image(uint64_t size) = 0;

  void SetUp() override { image_ = make_image(kDataOffset + kDataBytes); }

  // A volume with keyslots for "first" and "second" and random plaintext in every sector; with
  // holes, every seventh sector is never written (all-zero ciphertext, read as zeros), so that
  // checksum blocks hold both.
  void make_volume(uint32_t sector_size = 4096, bool holes = false);

  std::unique_ptr<EncryptedImage> data_path(std::span<const uint8_t> key, uint32_t sector_size);
  static ReencryptOptions small_steps();
  Result<ReencryptReport> reencrypt(RawImage& image, const std::vector<std::string>& passphrases,
                                    const ReencryptOptions& options);
  void expect_reencrypted(const std::vector<std::string>& opening, const std::string& context);

  // Every change of the run failed: once as an I/O error the run reports (thorough only) and as a
  // crash that keeps some of the unflushed writes (none and all; thorough: also the first, and every
  // other); then a second run on the real image finishes the job.
  // options are small_steps() and what a case changes (a sector size, the checksum hash).
  void check_every_crash_point(bool thorough, const ReencryptOptions& options = small_steps());

  std::vector<uint8_t> contents();
  void put_back(const std::vector<uint8_t>& bytes);

  std::unique_ptr<RawImage> image_;
  std::vector<uint8_t> old_key_, plaintext_;
  uint32_t old_sector_size_ = 4096;
};

}  // namespace rbdluks
