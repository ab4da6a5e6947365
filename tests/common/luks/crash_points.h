// The crash-point checks of LUKS header operations on any RawImage, shared by the tests on image
// files (crash_points_test.cc) and on RBD images (tests/plugin/rbd/crash_points_rbd_test.cc).
//
// Each operation (formatting a blank image, adding and removing a keyslot, formatting over a
// volume) runs once to count its changes (writes, flushes) and then once for every change n with
// that change failing (FaultInjectingImage): as a transient error, and as a crash that loses any
// combination of the writes not flushed yet. Afterwards the image must be exactly in the old or the
// new state: the passphrases that open it and its active keyslots both as before or both as after,
// never a mix, never neither; and the data segment must be untouched.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "luks_volume.h"
#include "raw_image.h"

namespace rbdluks {

// What a volume opens with: the candidate passphrases that open a keyslot, and its active keyslots.
struct VolumeState {
  bool has_header = false;
  std::set<std::string> opens;
  std::set<int> keyslots;

  bool operator==(const VolumeState&) const = default;
};

// The parameter is the LUKS version, 1 or 2.
class CrashPointsFixture : public ::testing::TestWithParam<int> {
 protected:
  static constexpr uint64_t kDataBytes = 64 * 1024;
  using Operation = std::function<Status(RawImage&)>;

  // Creates the image under test blank, data_offset() + kDataBytes bytes, and opens it for image().
  virtual void create_image() = 0;
  virtual RawImage& image() = 0;

  // The test cases, for the TEST_Ps of each kind of image.
  void format_of_a_blank_image();
  void format_over_a_volume_restores_it_when_a_write_fails();
  void keyslot_add();
  void keyslot_remove();

  int version() const { return GetParam(); }
  uint64_t data_offset() const;

 private:
  void make_blank_image();
  void format(const std::string& passphrase);
  Operation add_keyslot_op(const std::string& passphrase) const;
  std::vector<uint8_t> contents();
  void put_back(const std::vector<uint8_t>& contents);
  VolumeState state(const std::vector<std::string>& candidates);
  void check_every_crash_point(const Operation& op, const std::vector<std::string>& candidates);
  std::vector<std::vector<bool>> subsets_of_unflushed(const Operation& op, const std::vector<uint8_t>& start,
                                                      uint64_t n);

  std::vector<uint8_t> volume_key_;
};

}  // namespace rbdluks
