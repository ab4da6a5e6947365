// FileImage's metadata: the sidecar that stands in for RBD image metadata on file images. Values
// survive reopening, and removal says whether the key was there without failing when it was not,
// as the RBD backend does (tests/plugin/rbd/rbd_image_test.cc).
#include "file_image.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace rbdluks {
namespace {

TEST(FileImage, MetadataSurvivesReopenAndRemovalSaysWhetherTheKeyWasThere) {
  TempDir dir;
  const std::string path = dir.file("image");
  {
    auto image = create_file_image(path, 1 << 20);
    ASSERT_TRUE(image.ok()) << image.error().message();
    ASSERT_TRUE((*image)->set_metadata("rbd-luks.a", "1"));
    ASSERT_TRUE((*image)->set_metadata("rbd-luks.b", "2"));
  }
  auto image = open_file_image(path, OpenMode::read_write);
  ASSERT_TRUE(image.ok()) << image.error().message();
  EXPECT_EQ((*image)->get_metadata("rbd-luks.a")->value_or(""), "1");

  auto removed = (*image)->remove_metadata("rbd-luks.a");
  ASSERT_TRUE(removed.ok()) << removed.error().message();
  EXPECT_TRUE(*removed);
  EXPECT_FALSE((*image)->get_metadata("rbd-luks.a")->has_value());
  EXPECT_EQ((*image)->get_metadata("rbd-luks.b")->value_or(""), "2") << "the other key stays";

  auto again = (*image)->remove_metadata("rbd-luks.a");
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_FALSE(*again);
}

}  // namespace
}  // namespace rbdluks
