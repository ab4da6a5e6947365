// Crash points of a reencryption on an RBD image of the test cluster (the case and what it checks:
// tests/common/reencrypt/reencrypt_fixture.h): a crash at every change the run makes, losing none or
// all of the writes not yet flushed, each followed by a run that must finish with the same
// plaintext. The faults are injected between the reencryption and the real RbdImage.
#include <gtest/gtest.h>
#include <rbd/librbd.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "rbd_connection.h"
#include "rbd_image.h"
#include "reencrypt_fixture.h"

namespace rbdluks {
namespace {

class RbdReencryptionTest : public ReencryptFixture {
 protected:
  std::unique_ptr<RawImage> make_image(uint64_t size) override {
    EXPECT_NE(std::getenv("CEPH_CONF"), nullptr) << "run through ctest, or set CEPH_CONF to a test cluster";
    auto connection = RbdConnection::connect({});
    EXPECT_TRUE(connection) << connection.error().message();
    if (!connection) return nullptr;
    connection_ = *connection;
    spec_ = RbdImageSpec{"rbd", "", "reencrypt-crash-points-" + std::to_string(getpid()), std::nullopt};
    auto image = create_rbd_image(connection_, spec_, size);
    EXPECT_TRUE(image) << image.error().message();
    return image ? std::unique_ptr<RawImage>(std::move(*image)) : nullptr;
  }
  void TearDown() override {
    image_.reset();
    if (!connection_) return;
    auto pool = connection_->open_pool(spec_.pool, "");
    if (pool) rbd_remove(pool->get(), spec_.image.c_str());
  }

 private:
  std::shared_ptr<RbdConnection> connection_;
  RbdImageSpec spec_;
};

TEST_F(RbdReencryptionTest, EveryCrashPointResumesToTheSamePlaintext) {
  make_volume(512, true);
  check_every_crash_point(false);
}

}  // namespace
}  // namespace rbdluks
