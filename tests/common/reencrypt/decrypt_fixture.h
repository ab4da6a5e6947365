// The decryption cases on any RawImage, shared by the tests on image files (decryption_test.cc)
// and on RBD images (tests/plugin/rbd/reencrypt_crash_points_rbd_test.cc): a volume with random
// plaintext (and holes, if asked), the run, and what must hold after it: the image is the
// plaintext alone, byte for byte, and keeps neither the run's marker nor the volume's metadata.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "raw_image.h"
#include "reencryption.h"

namespace rbdluks {

struct DecryptCase {
  int version = 2;
  uint32_t sector_size = 4096;
  uint64_t data_offset = 256 << 10;  // below the hotzone of small_steps(), which a step must not pass
  uint64_t data_bytes = 768 << 10;
  bool holes = false;  // every seventh sector never written (all-zero ciphertext, plaintext zeros)
  // The middle three fifths never written either: with hotzones of a fifth, a step with nothing to
  // move lies between steps that do.
  bool gap = false;
};

// How gtest names a case in its output.
inline void PrintTo(const DecryptCase& c, std::ostream* os) {
  *os << "LUKS" << c.version << ", " << c.sector_size << "-byte sectors, data offset " << c.data_offset << ", "
      << c.data_bytes << " bytes of data" << (c.holes ? ", holes" : "") << (c.gap ? ", a gap" : "");
}

class DecryptFixture : public ::testing::Test {
 protected:
  // The image metadata key of the volume that the run removes at its end.
  static constexpr const char* kVolumeKey = "rbd-luks.key-ref";

  // A blank image of size bytes, kept open for the whole test.
  virtual std::unique_ptr<RawImage> make_image(uint64_t size) = 0;

  // The volume of the case, with the passphrase "passphrase", its plaintext and kVolumeKey.
  void make_volume(const DecryptCase& volume);

  static ReencryptOptions small_steps();
  static Result<ReencryptReport> decrypt(RawImage& image, const std::string& passphrase = "passphrase",
                                         const ReencryptOptions& options = small_steps());
  void expect_decrypted(const std::string& context);
  std::vector<uint8_t> contents();
  // The image as make_volume left it: its size, its bytes and holes, its metadata.
  void put_back();
  // Every change of the run failed (FaultInjectingImage; crash_points.h), then a second run finishes.
  void check_every_crash_point(bool thorough);

  std::unique_ptr<RawImage> image_;
  std::vector<uint8_t> plaintext_, start_;
};

}  // namespace rbdluks
