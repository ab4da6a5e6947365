// What librbd_luks's callers see when the cluster turns their client away, on the real test
// cluster: a client blocklisted by the monitors (every call fails with -ESHUTDOWN, librbd's
// -EBLOCKLISTED) and a pool whose placement groups have no OSD (every call fails with -ETIMEDOUT
// after rados_osd_op_timeout). Never a silent success, never a hang; and rbd_luks_close reports
// writes that librbd's cache acknowledged but could not write, while an unfenced close leaves
// them readable by other clients.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <string>
#include <system_error>
#include <vector>

#include "cluster_faults.h"
#include "encrypted_rbd_fixture.h"
#include "rbd_luks/image.h"
#include "rbd_luks/librbd_luks.h"

namespace rbdluks {
namespace {

using namespace rbdluks::testing;

// librbd's write-back cache holding every write until a flush: Pacific's default policy
// (writearound) also acknowledges writes before the OSDs have them, but sends them at once, so
// whether one is still unwritten when the client is fenced would be a race. Here it always is.
const OwnClient::Options kWriteBackCache = {{"rbd_cache", "true"},
                                            {"rbd_cache_policy", "writeback"},
                                            {"rbd_cache_writethrough_until_flush", "false"},
                                            {"rbd_cache_max_dirty_age", "60"}};
// Every call goes to the OSDs, so each one meets the fault itself.
const OwnClient::Options kNoCache = {{"rbd_cache", "false"}};

class CApiFaultTest : public EncryptedRbdFixture {
 protected:
  static rbd_luks_image_t open(rados_ioctx_t io, const std::string& name) {
    rbd_luks_image_t image = nullptr;
    EXPECT_EQ(rbd_luks_open(io, name.c_str(), nullptr, kPassphrase.data(), kPassphrase.size(), &image), 0)
        << rbd_luks_last_error();
    return image;
  }

  // The plaintext as a fresh client of the fixture's own connection reads it.
  std::vector<uint8_t> read_back(const std::string& name, uint64_t offset, size_t length) {
    std::vector<uint8_t> got(length, 0xee);
    rbd_luks_image_t image = open(io(), name);
    if (image == nullptr) return got;
    EXPECT_EQ(rbd_luks_read(image, offset, length, reinterpret_cast<char*>(got.data()), 0),
              static_cast<ssize_t>(length));
    EXPECT_EQ(rbd_luks_close(image), 0) << rbd_luks_last_error();
    return got;
  }

  rados_t admin() const { return connection_->handle(); }
};

TEST_F(CApiFaultTest, CloseFlushesSoOtherClientsReadTheWrites) {
  const std::string name = create_luks_image(8 * kMiB);
  const auto data = random_bytes(100000, 1);
  {
    OwnClient client(kWriteBackCache);
    rbd_luks_image_t image = open(client.io(), name);
    ASSERT_NE(image, nullptr);
    ASSERT_EQ(rbd_luks_write(image, 4097, data.size(), reinterpret_cast<const char*>(data.data()), 0), 100000);
    EXPECT_EQ(rbd_luks_close(image), 0) << rbd_luks_last_error();
  }
  EXPECT_EQ(read_back(name, 4097, data.size()), data);
}

TEST_F(CApiFaultTest, CloseReportsWritesTheCacheAcknowledgedButTheClusterRefused) {
  const std::string name = create_luks_image(8 * kMiB);
  const auto data = random_bytes(65536, 2);
  {
    OwnClient client(kWriteBackCache);
    rbd_luks_image_t image = open(client.io(), name);
    ASSERT_NE(image, nullptr);
    ASSERT_EQ(rbd_luks_write(image, 0, data.size(), reinterpret_cast<const char*>(data.data()), 0), 65536)
        << "acknowledged by librbd's cache";
    const Blocklisting fenced(admin(), client);
    EXPECT_EQ(rbd_luks_close(image), -ESHUTDOWN) << rbd_luks_last_error();
    EXPECT_NE(std::string(rbd_luks_last_error()).find(name), std::string::npos) << rbd_luks_last_error();
  }
  // What close reported is real: the write never reached the cluster. And close released the
  // image: another client opens it and writes.
  EXPECT_EQ(read_back(name, 0, data.size()), std::vector<uint8_t>(data.size(), 0));
  rbd_luks_image_t image = open(io(), name);
  ASSERT_NE(image, nullptr);
  EXPECT_EQ(rbd_luks_write(image, 0, data.size(), reinterpret_cast<const char*>(data.data()), 0), 65536);
  EXPECT_EQ(rbd_luks_close(image), 0) << rbd_luks_last_error();
  EXPECT_EQ(read_back(name, 0, data.size()), data);
}

TEST_F(CApiFaultTest, FlushReportsWritesTheCacheAcknowledgedButTheClusterRefused) {
  const std::string name = create_luks_image(8 * kMiB);
  OwnClient client(kWriteBackCache);
  rbd_luks_image_t image = open(client.io(), name);
  ASSERT_NE(image, nullptr);
  // Whole sectors, which librbd's cache acknowledges early (a partial-sector write waits for the OSDs).
  const std::vector<char> sectors(8192, 'h');
  ASSERT_EQ(rbd_luks_write(image, 0, sectors.size(), sectors.data(), 0), static_cast<ssize_t>(sectors.size()));
  const Blocklisting fenced(admin(), client);
  EXPECT_EQ(rbd_luks_flush(image), -ESHUTDOWN) << rbd_luks_last_error();
  rbd_luks_completion_t c = nullptr;
  ASSERT_EQ(rbd_luks_aio_create_completion(nullptr, nullptr, &c), 0);
  ASSERT_EQ(rbd_luks_aio_flush(image, c), 0);
  ASSERT_EQ(rbd_luks_aio_wait_for_complete(c), 0);
  EXPECT_EQ(rbd_luks_aio_get_return_value(c), -ESHUTDOWN);
  rbd_luks_aio_release(c);
  EXPECT_EQ(rbd_luks_close(image), -ESHUTDOWN) << rbd_luks_last_error();
}

TEST_F(CApiFaultTest, BlocklistedClientGetsAnErrorFromEveryCall) {
  const std::string name = create_luks_image(8 * kMiB);
  OwnClient client(kNoCache);
  rbd_luks_image_t image = open(client.io(), name);
  ASSERT_NE(image, nullptr);
  std::vector<char> buffer(8192, 'x');
  ASSERT_EQ(rbd_luks_write(image, 0, buffer.size(), buffer.data(), 0), 8192);
  ASSERT_EQ(rbd_luks_metadata_set(image, "rbd-luks.test", "v"), 0);

  const Blocklisting fenced(admin(), client);
  EXPECT_EQ(rbd_luks_read(image, 0, 4096, buffer.data(), 0), -ESHUTDOWN) << rbd_luks_last_error();
  EXPECT_EQ(rbd_luks_write(image, 4096, 4096, buffer.data(), 0), -ESHUTDOWN);
  EXPECT_EQ(rbd_luks_write(image, 100, 10, buffer.data(), 0), -ESHUTDOWN) << "a partial sector";
  EXPECT_EQ(rbd_luks_discard(image, 0, 4096), -ESHUTDOWN);
  EXPECT_EQ(rbd_luks_write_zeroes(image, 0, 100), -ESHUTDOWN);
  rbd_luks_completion_t c = nullptr;
  ASSERT_EQ(rbd_luks_aio_create_completion(nullptr, nullptr, &c), 0);
  ASSERT_EQ(rbd_luks_aio_write(image, 0, 4096, buffer.data(), c, 0), 0);
  ASSERT_EQ(rbd_luks_aio_wait_for_complete(c), 0);
  EXPECT_EQ(rbd_luks_aio_get_return_value(c), -ESHUTDOWN);
  rbd_luks_aio_release(c);

  EXPECT_EQ(rbd_luks_resize(image, 16 * kMiB), -ESHUTDOWN) << rbd_luks_last_error();
  char value[16] = {};
  size_t length = sizeof value;
  EXPECT_EQ(rbd_luks_metadata_get(image, "rbd-luks.test", value, &length), -ESHUTDOWN) << rbd_luks_last_error();
  EXPECT_EQ(rbd_luks_metadata_set(image, "rbd-luks.test", "w"), -ESHUTDOWN) << rbd_luks_last_error();
  EXPECT_EQ(rbd_luks_metadata_remove(image, "rbd-luks.test"), -ESHUTDOWN) << rbd_luks_last_error();
  EXPECT_EQ(rbd_luks_close(image), -ESHUTDOWN) << rbd_luks_last_error();
}

// Every call, each on a thread of its own, must come back with -ETIMEDOUT within a bound.
TEST_F(CApiFaultTest, CallsOnAPoolWithoutOsdsTimeOut) {
  StallablePool pool(admin());
  // No exclusive lock and no object map (which order != 0 gives): their shutdown would add a
  // timed-out wait each to close, and with an object map librbd answers reads of unwritten objects
  // without asking the OSDs.
  const std::string name = create_luks_image(8 * kMiB, LuksFormat{.order = 22, .pool = pool.name()});
  OwnClient::Options options = kWriteBackCache;
  options.emplace_back("rados_osd_op_timeout", "1");
  const OwnClient client(options, pool.name());
  rbd_luks_image_t image = open(client.io(), name);
  ASSERT_NE(image, nullptr);
  // Whole sectors: a partial-sector write is a compare-and-write, which librbd's cache does not
  // acknowledge early.
  const std::vector<char> sectors(8192, 'h');
  ASSERT_EQ(rbd_luks_write(image, 0, sectors.size(), sectors.data(), 0), static_cast<ssize_t>(sectors.size()))
      << "acknowledged by librbd's cache";
  pool.stall(client);

  char read_buffer[4096];
  char value[16];
  size_t length = sizeof value;
  const std::vector<std::pair<std::string, std::function<long()>>> calls = {
      {"read", [&] { return rbd_luks_read(image, 4 * kMiB, sizeof read_buffer, read_buffer, 0); }},
      {"flush", [&] { return rbd_luks_flush(image); }},
      {"resize", [&] { return rbd_luks_resize(image, 16 * kMiB); }},
      {"metadata_get", [&] { return rbd_luks_metadata_get(image, "rbd-luks.test", value, &length); }},
      {"metadata_set", [&] { return rbd_luks_metadata_set(image, "rbd-luks.test", "v"); }},
  };
  std::vector<std::future<long>> results;
  for (const auto& call : calls) results.push_back(std::async(std::launch::async, call.second));
  for (size_t i = 0; i < calls.size(); ++i) {
    ASSERT_EQ(results[i].wait_for(std::chrono::seconds(30)), std::future_status::ready) << calls[i].first << " hangs";
    EXPECT_EQ(results[i].get(), -ETIMEDOUT) << calls[i].first;
  }
  auto closed = std::async(std::launch::async, [&] { return rbd_luks_close(image); });
  ASSERT_EQ(closed.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "close hangs";
  EXPECT_EQ(closed.get(), -ETIMEDOUT);
}

// ---- The C++ API ----

class ImageApiFaultTest : public CApiFaultTest {};

TEST_F(ImageApiFaultTest, CloseReturnsTheFailureAsAStatus) {
  const std::string name = create_luks_image(8 * kMiB);
  OwnClient client(kWriteBackCache);
  auto image = Image::open(client.io(), name, bytes_of(kPassphrase));
  ASSERT_TRUE(image) << image.error().message();
  // Whole sectors, which librbd's cache acknowledges early (a partial-sector write waits for the OSDs).
  ASSERT_TRUE((*image)->write(0, bytes_of(std::string(8192, 'h'))));
  const Blocklisting fenced(admin(), client);
  const Status closed = (*image)->close();
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().code(), std::error_code(ESHUTDOWN, std::generic_category())) << closed.error().message();
  EXPECT_NE(closed.error().message().find(name), std::string::npos) << closed.error().message();
}

}  // namespace
}  // namespace rbdluks
