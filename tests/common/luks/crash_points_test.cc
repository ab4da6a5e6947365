// Crash points of every LUKS header change, LUKS2 and LUKS1, on image files (the cases and what
// they check: crash_points.h).
#include <gtest/gtest.h>

#include "crash_points.h"
#include "file_image.h"
#include "test_support.h"

namespace rbdluks {
namespace {

class FileCrashPointsTest : public CrashPointsFixture {
 protected:
  void create_image() override {
    auto image = create_file_image(dir_.file("image"), data_offset() + kDataBytes);
    ASSERT_TRUE(image) << image.error().message();
    image_ = std::move(*image);
  }
  RawImage& image() override { return *image_; }

 private:
  TempDir dir_;
  std::unique_ptr<RawImage> image_;
};

TEST_P(FileCrashPointsTest, FormatOfABlankImage) { format_of_a_blank_image(); }
TEST_P(FileCrashPointsTest, FormatOverAVolumeRestoresItWhenAWriteFails) {
  format_over_a_volume_restores_it_when_a_write_fails();
}
TEST_P(FileCrashPointsTest, KeyslotAdd) { keyslot_add(); }
TEST_P(FileCrashPointsTest, KeyslotRemove) { keyslot_remove(); }

INSTANTIATE_TEST_SUITE_P(Versions, FileCrashPointsTest, ::testing::Values(2, 1),
                         [](const auto& version) { return "luks" + std::to_string(version.param); });

}  // namespace
}  // namespace rbdluks
