// Crash points of every LUKS header change, LUKS2 and LUKS1, on RBD images of the test cluster (the
// cases and what they check: tests/common/luks/crash_points.h). The faults are injected between the
// LUKS engine and the real RbdImage; the crash model (unflushed writes lost in any combination) is
// what librbd's write-back cache allows.
#include <gtest/gtest.h>
#include <rbd/librbd.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "crash_points.h"
#include "rbd_connection.h"
#include "rbd_image.h"

namespace rbdluks {
namespace {

class RbdCrashPointsTest : public CrashPointsFixture {
 protected:
  void SetUp() override {
    ASSERT_NE(std::getenv("CEPH_CONF"), nullptr) << "run through ctest, or set CEPH_CONF to a test cluster";
    auto connection = RbdConnection::connect({});
    ASSERT_TRUE(connection) << connection.error().message();
    connection_ = *connection;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    spec_ = RbdImageSpec{"rbd", "", std::string("crash-points-") + info->name() + "-" + std::to_string(getpid()),
                         std::nullopt};
    for (char& c : spec_.image) {
      if (c == '/') c = '_';
    }
  }
  void TearDown() override {
    image_.reset();
    if (!connection_) return;
    auto pool = connection_->open_pool(spec_.pool, "");
    if (pool) rbd_remove(pool->get(), spec_.image.c_str());
  }

  // One handle throughout: what it reads after a crash's surviving writes were flushed is what the
  // cluster holds, and reopening for every run would only cost time.
  void create_image() override {
    auto image = create_rbd_image(connection_, spec_, data_offset() + kDataBytes);
    ASSERT_TRUE(image) << image.error().message();
    image_ = std::move(*image);
  }
  RawImage& image() override { return *image_; }

 private:
  std::shared_ptr<RbdConnection> connection_;
  RbdImageSpec spec_;
  std::unique_ptr<RbdImage> image_;
};

TEST_P(RbdCrashPointsTest, FormatOfABlankImage) { format_of_a_blank_image(); }
TEST_P(RbdCrashPointsTest, FormatOverAVolumeRestoresItWhenAWriteFails) {
  format_over_a_volume_restores_it_when_a_write_fails();
}
TEST_P(RbdCrashPointsTest, KeyslotAdd) { keyslot_add(); }
TEST_P(RbdCrashPointsTest, KeyslotRemove) { keyslot_remove(); }

INSTANTIATE_TEST_SUITE_P(Versions, RbdCrashPointsTest, ::testing::Values(2, 1),
                         [](const auto& version) { return "luks" + std::to_string(version.param); });

}  // namespace
}  // namespace rbdluks
