// Crash points of a reencryption and of a decryption on an RBD image of the test cluster (the cases
// and what they check: tests/common/reencrypt/reencrypt_fixture.h and decrypt_fixture.h): a crash
// at every change the run makes, losing none or all of the writes not yet flushed, each followed by
// a run that must finish with the same plaintext. The faults are injected between the run and the
// real RbdImage, whose allocation map the run reads through them.
#include <gtest/gtest.h>
#include <rbd/librbd.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "decrypt_fixture.h"
#include "encrypt_fixture.h"
#include "hotzone_checksums.h"
#include "rbd_connection.h"
#include "rbd_image.h"
#include "reencrypt_fixture.h"

namespace rbdluks {
namespace {

// A fresh RBD image per test, removed at the end.
class TestRbdImages {
 public:
  std::unique_ptr<RawImage> create(uint64_t size) {
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
  // After the image is closed.
  void remove() {
    if (!connection_) return;
    auto pool = connection_->open_pool(spec_.pool, "");
    if (pool) rbd_remove(pool->get(), spec_.image.c_str());
  }

 private:
  std::shared_ptr<RbdConnection> connection_;
  RbdImageSpec spec_;
};

// A fixture of tests/common/reencrypt whose image is an RBD image.
template <typename Fixture>
class OnRbd : public Fixture {
 protected:
  std::unique_ptr<RawImage> make_image(uint64_t size) override { return images_.create(size); }
  void TearDown() override {
    this->image_.reset();
    images_.remove();
  }

 private:
  TestRbdImages images_;
};

using RbdReencryptionTest = OnRbd<ReencryptFixture>;
using RbdDecryptionTest = OnRbd<DecryptFixture>;
using RbdEncryptionTest = OnRbd<EncryptFixture>;

// With the head checksum, which the command line picks on RBD, and cryptsetup's sha256.
TEST_F(RbdReencryptionTest, EveryCrashPointResumesToTheSamePlaintext) {
  make_volume(512, true);
  ReencryptOptions options = small_steps();
  options.checksum_hash = kHeadChecksumHash;
  check_every_crash_point(false, options);
}

TEST_F(RbdReencryptionTest, EveryCrashPointResumesWithWholeBlockChecksums) {
  make_volume(4096, true);
  check_every_crash_point(false);
}

TEST_F(RbdDecryptionTest, EveryCrashPointResumesToTheSamePlaintext) {
  make_volume(DecryptCase{2, 4096, 256 << 10, 768 << 10, true});
  check_every_crash_point(false);
}

// On RBD, plaintext blocks of zeros become holes (write_zeroes where the destination held data):
// a path files do not take.
TEST_F(RbdEncryptionTest, EveryCrashPointResumesToTheSamePlaintext) { check_every_crash_point(false); }

}  // namespace
}  // namespace rbdluks
