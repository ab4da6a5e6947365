// An open EncryptedRbdImage and header changes by another client (rbd_test_client, a process of
// its own): a new header (format) stops the image's I/O with -ESTALE, and says why; a new keyslot
// leaves the volume key, and I/O goes on.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "encrypted_rbd_fixture.h"
#include "encrypted_rbd_image.h"
#include "test_client.h"

namespace rbdluks {
namespace {

using namespace rbdluks::testing;
using Clock = std::chrono::steady_clock;

class HeaderWatchTest : public EncryptedRbdFixture {
 protected:
  std::unique_ptr<EncryptedRbdImage> open(const std::string& name) {
    auto image = EncryptedRbdImage::open(io(), name, std::nullopt, false, bytes_of(kPassphrase));
    EXPECT_TRUE(image) << image.error().message();
    return image ? std::move(*image) : nullptr;
  }
};

TEST_F(HeaderWatchTest, AnotherClientsFormatStopsIoWithEstale) {
  const std::string name = create_luks_image(4 * kMiB);
  auto image = open(name);
  ASSERT_TRUE(image);
  const auto data = random_bytes(4096, 1);
  ASSERT_EQ(image->write(0, data), 4096);

  ASSERT_EQ(run_test_client({"format", name, "another passphrase"}), 0);
  // librbd reports the change on its own time; the header is read again after that.
  ssize_t r = 0;
  for (const auto deadline = Clock::now() + std::chrono::seconds(10); Clock::now() < deadline;) {
    r = image->write(0, data);
    if (r < 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(r, -ESTALE) << "the image went on writing with the old key";
  std::vector<uint8_t> out(4096);
  EXPECT_EQ(image->read(0, out), -ESTALE);
  EXPECT_EQ(image->write_zeroes(0, 4096), -ESTALE);
  EXPECT_EQ(image->flush(), -ESTALE);
  const Status status = image->header_status();
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message().find("another client wrote a new LUKS header"), std::string::npos)
      << status.error().message();
}

TEST_F(HeaderWatchTest, ResizeAfterAnotherClientsFormatFailsAtOnce) {
  const std::string name = create_luks_image(4 * kMiB);
  auto image = open(name);
  ASSERT_TRUE(image);
  ASSERT_EQ(run_test_client({"format", name, "another passphrase"}), 0);
  // Under the header lock the header is read again, whether or not librbd has reported the change.
  const Status resized = image->resize(8 * kMiB);
  ASSERT_FALSE(resized);
  EXPECT_NE(resized.error().message().find("new LUKS header"), std::string::npos) << resized.error().message();
}

TEST_F(HeaderWatchTest, IoGoesOnWhenAnotherClientAddsAKeyslot) {
  const std::string name = create_luks_image(4 * kMiB);
  auto image = open(name);
  ASSERT_TRUE(image);
  ASSERT_EQ(run_test_client({"add-keyslot", name, kPassphrase, "a second passphrase"}), 0);
  std::vector<uint8_t> out(4096);
  for (const auto until = Clock::now() + std::chrono::milliseconds(500); Clock::now() < until;) {
    const auto data = random_bytes(4096, 2);
    ASSERT_EQ(image->write(8192, data), 4096);
    ASSERT_EQ(image->read(8192, out), 4096);
    ASSERT_EQ(out, data);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(image->header_status());
}

}  // namespace
}  // namespace rbdluks
