// The client library librbd_luks.so through its public headers only: the C API (open, sync and
// asynchronous I/O with completion callbacks and waits, metadata, resize, error codes) and the C++
// class rbdluks::Image. The images are made with the LUKS engine directly (encrypted_rbd_fixture.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "encrypted_rbd_fixture.h"
#include "rbd_luks/image.h"
#include "rbd_luks/librbd_luks.h"

namespace rbdluks {
namespace {

using namespace rbdluks::testing;

class CApiTest : public EncryptedRbdFixture {
 protected:
  rbd_luks_image_t open(const std::string& name, const char* snap = nullptr) {
    rbd_luks_image_t image = nullptr;
    EXPECT_EQ(rbd_luks_open(io(), name.c_str(), snap, kPassphrase.data(), kPassphrase.size(), &image), 0)
        << rbd_luks_last_error();
    return image;
  }
};

TEST_F(CApiTest, SynchronousReadWriteDiscardFlush) {
  const std::string name = create_luks_image(8 * kMiB);
  rbd_luks_image_t image = open(name);
  ASSERT_NE(image, nullptr);
  uint64_t size = 0;
  ASSERT_EQ(rbd_luks_get_size(image, &size), 0);
  EXPECT_EQ(size, 8 * kMiB);

  const auto data = random_bytes(10000, 1);
  ASSERT_EQ(rbd_luks_write(image, 4095, data.size(), reinterpret_cast<const char*>(data.data()), 0), 10000);
  std::vector<char> got(10000);
  ASSERT_EQ(rbd_luks_read(image, 4095, got.size(), got.data(), LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL), 10000);
  EXPECT_EQ(std::memcmp(got.data(), data.data(), got.size()), 0);

  EXPECT_EQ(rbd_luks_discard(image, 5000, 100), 100);
  EXPECT_EQ(rbd_luks_write_zeroes(image, 8000, 4096), 4096);
  EXPECT_EQ(rbd_luks_flush(image), 0);
  ASSERT_EQ(rbd_luks_read(image, 4095, got.size(), got.data(), 0), 10000);
  auto expected = data;
  std::fill_n(expected.begin() + (5000 - 4095), 100, 0);
  std::fill_n(expected.begin() + (8000 - 4095), 4096, 0);
  EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size()), 0);

  // Past the end, as librbd: cut short at the end, or -EINVAL when starting beyond it.
  EXPECT_EQ(rbd_luks_read(image, size - 10, 20, got.data(), 0), 10);
  EXPECT_EQ(rbd_luks_read(image, size + 1, 20, got.data(), 0), -EINVAL);
  EXPECT_EQ(rbd_luks_close(image), 0) << rbd_luks_last_error();

  // A new handle reads what the closed one wrote.
  image = open(name);
  ASSERT_NE(image, nullptr);
  std::fill(got.begin(), got.end(), 'x');
  ASSERT_EQ(rbd_luks_read(image, 4095, got.size(), got.data(), 0), 10000);
  EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size()), 0);
  EXPECT_EQ(rbd_luks_close(image), 0) << rbd_luks_last_error();
}

// Records what the completion callback saw.
struct CallbackLog {
  std::mutex mutex;
  std::condition_variable called;
  std::vector<ssize_t> results;
  std::vector<void*> args;
  bool release_in_callback = false;

  static void callback(rbd_luks_completion_t c, void* arg) {
    auto* log = static_cast<CallbackLog*>(arg);
    const std::lock_guard lock(log->mutex);
    log->results.push_back(rbd_luks_aio_get_return_value(c));
    log->args.push_back(rbd_luks_aio_get_arg(c));
    if (log->release_in_callback) rbd_luks_aio_release(c);
    log->called.notify_all();
  }
  void wait_for(size_t n) {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(called.wait_for(lock, std::chrono::seconds(30), [&] { return results.size() >= n; }));
  }
};

// The allocation map copy tools use to stay thin: whole objects that exist, in plaintext offsets
// (the header's objects never show), and discard and write-zeroes give whole objects back.
TEST_F(CApiTest, AllocatedExtentsFollowWritesAndZeroingGivesObjectsBack) {
  const std::string name = create_luks_image(32 * kMiB);  // 4 MiB objects; data at raw 16 MiB
  rbd_luks_image_t image = nullptr;
  ASSERT_EQ(rbd_luks_open(io(), name.c_str(), nullptr, kPassphrase.data(), kPassphrase.size(), &image), 0);
  using Extents = std::vector<std::pair<uint64_t, uint64_t>>;
  auto extents = [&](uint64_t ofs, uint64_t len) {
    Extents out;
    const int r = rbd_luks_allocated_extents(
        image, ofs, len,
        [](uint64_t offset, uint64_t length, void* arg) {
          static_cast<Extents*>(arg)->emplace_back(offset, length);
          return 0;
        },
        &out);
    EXPECT_EQ(r, 0) << rbd_luks_last_error();
    return out;
  };
  EXPECT_EQ(extents(0, 32 * kMiB), Extents{}) << "a fresh image holds no data";
  const std::vector<char> data(4096, 'x');
  ASSERT_EQ(rbd_luks_write(image, 9 * kMiB + 4096, data.size(), data.data(), 0), 4096);
  ASSERT_EQ(rbd_luks_write(image, 20 * kMiB, data.size(), data.data(), 0), 4096);
  EXPECT_EQ(extents(0, 32 * kMiB), (Extents{{8 * kMiB, 4 * kMiB}, {20 * kMiB, 4 * kMiB}}));
  EXPECT_EQ(extents(9 * kMiB, 12 * kMiB), (Extents{{9 * kMiB, 3 * kMiB}, {20 * kMiB, kMiB}})) << "clipped";
  EXPECT_EQ(extents(9 * kMiB + 1, 1), (Extents{{9 * kMiB + 1, 1}}));
  EXPECT_EQ(extents(31 * kMiB + 512, kMiB - 512), Extents{});

  ASSERT_EQ(rbd_luks_discard(image, 8 * kMiB, 4 * kMiB), static_cast<int>(4 * kMiB));
  ASSERT_EQ(rbd_luks_write_zeroes(image, 20 * kMiB, 4 * kMiB), static_cast<ssize_t>(4 * kMiB));
  EXPECT_EQ(extents(0, 32 * kMiB), Extents{}) << "discard and write-zeroes of whole objects keep the image thin";

  // The same through the asynchronous calls.
  ASSERT_EQ(rbd_luks_write(image, 9 * kMiB, data.size(), data.data(), 0), 4096);
  ASSERT_EQ(rbd_luks_write(image, 20 * kMiB, data.size(), data.data(), 0), 4096);
  EXPECT_EQ(extents(0, 32 * kMiB), (Extents{{8 * kMiB, 4 * kMiB}, {20 * kMiB, 4 * kMiB}}));
  rbd_luks_completion_t c = nullptr;
  ASSERT_EQ(rbd_luks_aio_create_completion(nullptr, nullptr, &c), 0);
  ASSERT_EQ(rbd_luks_aio_discard(image, 8 * kMiB, 4 * kMiB, c), 0);
  ASSERT_EQ(rbd_luks_aio_wait_for_complete(c), 0);
  EXPECT_EQ(rbd_luks_aio_get_return_value(c), 0);
  rbd_luks_aio_release(c);
  ASSERT_EQ(rbd_luks_aio_create_completion(nullptr, nullptr, &c), 0);
  ASSERT_EQ(rbd_luks_aio_write_zeroes(image, 20 * kMiB, 4 * kMiB, c), 0);
  ASSERT_EQ(rbd_luks_aio_wait_for_complete(c), 0);
  EXPECT_EQ(rbd_luks_aio_get_return_value(c), 0);
  rbd_luks_aio_release(c);
  EXPECT_EQ(extents(0, 32 * kMiB), Extents{}) << "aio discard and write-zeroes keep the image thin too";
  std::vector<char> got(4096, 'y');
  ASSERT_EQ(rbd_luks_read(image, 9 * kMiB + 4096, got.size(), got.data(), 0), 4096);
  EXPECT_EQ(got, std::vector<char>(4096, 0));

  EXPECT_EQ(extents(32 * kMiB, 0), Extents{});
  EXPECT_EQ(rbd_luks_allocated_extents(
                image, 0, 32 * kMiB + 1, [](uint64_t, uint64_t, void*) { return 0; }, nullptr),
            -EINVAL)
      << "a range past the end";
  EXPECT_EQ(rbd_luks_allocated_extents(image, 0, kMiB, nullptr, nullptr), -EINVAL) << "no callback";
  EXPECT_EQ(rbd_luks_close(image), 0) << rbd_luks_last_error();
}

TEST_F(CApiTest, AsynchronousRequestsCallBackThenWake) {
  const std::string name = create_luks_image(8 * kMiB);
  rbd_luks_image_t image = open(name);
  ASSERT_NE(image, nullptr);
  CallbackLog log;
  const auto data = random_bytes(5 * kMiB, 2);  // large: crypto on the worker pool

  rbd_luks_completion_t c = nullptr;
  ASSERT_EQ(rbd_luks_aio_create_completion(&log, &CallbackLog::callback, &c), 0);
  ASSERT_EQ(rbd_luks_aio_write(image, 777, data.size(), reinterpret_cast<const char*>(data.data()), c, 0), 0);
  ASSERT_EQ(rbd_luks_aio_wait_for_complete(c), 0);
  EXPECT_EQ(rbd_luks_aio_is_complete(c), 1);
  {
    const std::lock_guard lock(log.mutex);
    ASSERT_EQ(log.results, std::vector<ssize_t>{0}) << "the callback ran before the wait returned; writes report 0";
    EXPECT_EQ(log.args, std::vector<void*>{&log});
  }
  EXPECT_EQ(rbd_luks_aio_get_return_value(c), 0);
  EXPECT_EQ(rbd_luks_aio_write(image, 0, 1, "x", c, 0), -EINVAL) << "a completion serves one request";
  rbd_luks_aio_release(c);

  // Reads report their byte count; a completion without callback is waited for.
  std::vector<uint8_t> got(data.size());
  ASSERT_EQ(rbd_luks_aio_create_completion(nullptr, nullptr, &c), 0);
  ASSERT_EQ(rbd_luks_aio_read(image, 777, got.size(), reinterpret_cast<char*>(got.data()), c, 0), 0);
  ASSERT_EQ(rbd_luks_aio_wait_for_complete(c), 0);
  EXPECT_EQ(rbd_luks_aio_get_return_value(c), static_cast<ssize_t>(got.size()));
  EXPECT_EQ(got, data);
  rbd_luks_aio_release(c);

  // Scatter/gather, discard, write_zeroes and flush, each releasing its completion in the callback.
  log.release_in_callback = true;
  const iovec wiov[] = {{const_cast<uint8_t*>(data.data()), 100}, {const_cast<uint8_t*>(data.data()) + 100, 5000}};
  ASSERT_EQ(rbd_luks_aio_create_completion(&log, &CallbackLog::callback, &c), 0);
  ASSERT_EQ(rbd_luks_aio_writev(image, wiov, 2, 6 * kMiB + 1, c), 0);
  log.wait_for(2);
  std::vector<uint8_t> a(3000), b(2100);
  const iovec riov[] = {{a.data(), a.size()}, {b.data(), b.size()}};
  ASSERT_EQ(rbd_luks_aio_create_completion(&log, &CallbackLog::callback, &c), 0);
  ASSERT_EQ(rbd_luks_aio_readv(image, riov, 2, 6 * kMiB + 1, c), 0);
  log.wait_for(3);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), data.begin()));
  EXPECT_TRUE(std::equal(b.begin(), b.end(), data.begin() + 3000));
  ASSERT_EQ(rbd_luks_aio_create_completion(&log, &CallbackLog::callback, &c), 0);
  ASSERT_EQ(rbd_luks_aio_discard(image, 6 * kMiB + 11, 10, c), 0);
  ASSERT_EQ(rbd_luks_aio_create_completion(&log, &CallbackLog::callback, &c), 0);
  ASSERT_EQ(rbd_luks_aio_write_zeroes(image, 0, 4096, c), 0);
  ASSERT_EQ(rbd_luks_aio_create_completion(&log, &CallbackLog::callback, &c), 0);
  ASSERT_EQ(rbd_luks_aio_flush(image, c), 0);
  log.wait_for(6);
  {
    const std::lock_guard lock(log.mutex);
    EXPECT_EQ(log.results, (std::vector<ssize_t>{0, 0, 5100, 0, 0, 0}));
  }
  ASSERT_EQ(rbd_luks_read(image, 6 * kMiB + 1, 20, reinterpret_cast<char*>(a.data()), 0), 20);
  EXPECT_TRUE(std::equal(a.begin(), a.begin() + 10, data.begin()));
  EXPECT_EQ(std::count(a.begin() + 10, a.begin() + 20, 0), 10);

  // Errors arrive through the completion.
  ASSERT_EQ(rbd_luks_aio_create_completion(nullptr, nullptr, &c), 0);
  ASSERT_EQ(rbd_luks_aio_read(image, 8 * kMiB, 1, reinterpret_cast<char*>(a.data()), c, 0), 0);
  ASSERT_EQ(rbd_luks_aio_wait_for_complete(c), 0);
  EXPECT_EQ(rbd_luks_aio_get_return_value(c), -EINVAL);
  rbd_luks_aio_release(c);
  EXPECT_EQ(rbd_luks_aio_readv(image, riov, 0, 0, c), -EINVAL);
  EXPECT_EQ(rbd_luks_close(image), 0);
}

// The argon2 memory ceiling (kdf_memory_budget.h; its waiting is tested there): the default is half
// of physical memory, a set value reads back, and 0 lifts it.
TEST_F(CApiTest, KdfMemoryLimitSetsAndReadsBack) {
  const uint64_t initial = rbd_luks_get_kdf_memory_limit();
  const uint64_t physical =
      static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  EXPECT_EQ(initial, physical / 2);
  rbd_luks_set_kdf_memory_limit(uint64_t{3} << 30);
  EXPECT_EQ(rbd_luks_get_kdf_memory_limit(), uint64_t{3} << 30);
  rbd_luks_set_kdf_memory_limit(0);
  EXPECT_EQ(rbd_luks_get_kdf_memory_limit(), 0u);
  rbd_luks_set_kdf_memory_limit(initial);
}

// rbd_luks_reencrypt while this thread writes and reads: every write lands, every read sees the
// last write, and the volume opens afterwards with the same passphrase. Then what it refuses.
TEST_F(CApiTest, ReencryptsOnlineWhileRequestsGoOn) {
  constexpr uint64_t kSize = 16 * kMiB;
  const std::string name = create_luks_image(kSize);
  rbd_luks_image_t image = open(name);
  ASSERT_NE(image, nullptr);
  std::vector<uint8_t> model = random_bytes(kSize, 5);
  ASSERT_EQ(rbd_luks_write(image, 0, kSize, reinterpret_cast<const char*>(model.data()), 0),
            static_cast<ssize_t>(kSize));

  const char* passphrases[] = {kPassphrase.data()};
  const size_t lengths[] = {kPassphrase.size()};
  std::atomic<int> reencrypted{1};
  std::thread run([&] { reencrypted = rbd_luks_reencrypt(image, passphrases, lengths, 1, kMiB, 0); });
  std::mt19937_64 rng(6);
  uint64_t requests = 0;
  std::string failure;  // the first; the loop goes on until the run ends, so that it can be joined
  while (reencrypted == 1 || requests < 100) {
    const uint64_t at = rng() % (kSize - 10000);
    const uint64_t length = 1 + rng() % 10000;
    if (rng() % 2 == 0) {
      const auto data = random_bytes(length, rng());
      if (rbd_luks_write(image, at, length, reinterpret_cast<const char*>(data.data()), 0) !=
          static_cast<ssize_t>(length)) {
        failure = failure.empty() ? "write at " + std::to_string(at) + " failed" : failure;
      }
      std::copy(data.begin(), data.end(), model.begin() + static_cast<std::ptrdiff_t>(at));
    } else {
      std::vector<uint8_t> got(length);
      if (rbd_luks_read(image, at, length, reinterpret_cast<char*>(got.data()), 0) != static_cast<ssize_t>(length) ||
          !std::equal(got.begin(), got.end(), model.begin() + static_cast<std::ptrdiff_t>(at))) {
        failure = failure.empty() ? "read at " + std::to_string(at) + " during the run" : failure;
      }
    }
    ++requests;
  }
  run.join();
  EXPECT_EQ(failure, "");
  ASSERT_EQ(reencrypted, 0) << rbd_luks_last_error();
  EXPECT_EQ(rbd_luks_reencrypt(image, passphrases, lengths, 1, 0, 0), -EINVAL) << "a second run on one open image";
  // Grown after the run, by the image that ran it: what it writes past the old end is under the new
  // key too, so it reads back after a reopen.
  ASSERT_EQ(rbd_luks_resize(image, kSize + kMiB), 0) << rbd_luks_last_error();
  const auto tail = random_bytes(kMiB, 7);
  ASSERT_EQ(rbd_luks_write(image, kSize, kMiB, reinterpret_cast<const char*>(tail.data()), 0),
            static_cast<ssize_t>(kMiB));
  model.insert(model.end(), tail.begin(), tail.end());
  EXPECT_EQ(rbd_luks_reencrypt(image, nullptr, nullptr, 1, 0, 0), -EINVAL);
  EXPECT_EQ(rbd_luks_reencrypt(image, passphrases, lengths, 1, 0, 8), -EINVAL);
  ASSERT_EQ(rbd_luks_close(image), 0);

  image = open(name);
  ASSERT_NE(image, nullptr);
  std::vector<uint8_t> got(model.size());
  ASSERT_EQ(rbd_luks_read(image, 0, got.size(), reinterpret_cast<char*>(got.data()), 0),
            static_cast<ssize_t>(got.size()));
  EXPECT_TRUE(got == model) << "the data after a reopen";
  // Another client has the image open: refused, and nothing changes.
  rbd_luks_image_t other = open(name);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(rbd_luks_reencrypt(image, passphrases, lengths, 1, 0, 0), -EBUSY);
  EXPECT_NE(std::string(rbd_luks_last_error()).find("is open by another client"), std::string::npos)
      << rbd_luks_last_error();
  ASSERT_EQ(rbd_luks_close(other), 0) << rbd_luks_last_error();
  const char* wrong[] = {"wrong"};
  const size_t wrong_length[] = {5};
  EXPECT_EQ(rbd_luks_reencrypt(image, wrong, wrong_length, 1, 0, 0), -EACCES);
  ASSERT_EQ(rbd_luks_read(image, 0, got.size(), reinterpret_cast<char*>(got.data()), 0),
            static_cast<ssize_t>(got.size()));
  EXPECT_TRUE(got == model) << "the data after the refusals";
  ASSERT_EQ(rbd_luks_close(image), 0);
}

TEST_F(CApiTest, OpenErrorCodes) {
  const std::string name = create_luks_image(4 * kMiB);
  rbd_luks_image_t image = nullptr;
  const std::string wrong = "wrong passphrase";
  EXPECT_EQ(rbd_luks_open(io(), name.c_str(), nullptr, wrong.data(), wrong.size(), &image), -EACCES);
  EXPECT_NE(std::string(rbd_luks_last_error()).find(name), std::string::npos) << rbd_luks_last_error();
  EXPECT_EQ(std::string(rbd_luks_last_error()).find(wrong), std::string::npos) << "no secrets in messages";
  EXPECT_EQ(rbd_luks_open(io(), "no-such-image", nullptr, kPassphrase.data(), kPassphrase.size(), &image), -ENOENT);
  EXPECT_EQ(rbd_luks_open(io(), name.c_str(), "no-such-snap", kPassphrase.data(), kPassphrase.size(), &image), -ENOENT);
  const std::string plain = fresh_name("plain");
  ASSERT_TRUE(create_raw(plain, 4 * kMiB));
  EXPECT_EQ(rbd_luks_open(io(), plain.c_str(), nullptr, kPassphrase.data(), kPassphrase.size(), &image), -EINVAL);
  EXPECT_NE(std::string(rbd_luks_last_error()).find("LUKS"), std::string::npos) << rbd_luks_last_error();
  EXPECT_EQ(rbd_luks_open(io(), nullptr, nullptr, kPassphrase.data(), kPassphrase.size(), &image), -EINVAL);
  EXPECT_EQ(image, nullptr);
}

TEST_F(CApiTest, ReadOnlyImagesRefuseChanges) {
  const std::string name = create_luks_image(4 * kMiB);
  rbd_luks_image_t image = nullptr;
  ASSERT_EQ(rbd_luks_open_read_only(io(), name.c_str(), nullptr, kPassphrase.data(), kPassphrase.size(), &image), 0);
  EXPECT_EQ(rbd_luks_write(image, 0, 1, "x", 0), -EROFS);
  EXPECT_EQ(rbd_luks_discard(image, 0, 1), -EROFS);
  EXPECT_EQ(rbd_luks_resize(image, 8 * kMiB), -EROFS);
  EXPECT_EQ(rbd_luks_metadata_set(image, "k", "v"), -EROFS);
  rbd_luks_completion_t c = nullptr;
  ASSERT_EQ(rbd_luks_aio_create_completion(nullptr, nullptr, &c), 0);
  ASSERT_EQ(rbd_luks_aio_write_zeroes(image, 0, 1, c), 0);
  ASSERT_EQ(rbd_luks_aio_wait_for_complete(c), 0);
  EXPECT_EQ(rbd_luks_aio_get_return_value(c), -EROFS);
  rbd_luks_aio_release(c);
  char byte = 1;
  EXPECT_EQ(rbd_luks_read(image, 0, 1, &byte, 0), 1);
  EXPECT_EQ(byte, 0);
  EXPECT_EQ(rbd_luks_close(image), 0);
}

TEST_F(CApiTest, MetadataAndResize) {
  const std::string name = create_luks_image(4 * kMiB);
  rbd_luks_image_t image = open(name);
  ASSERT_NE(image, nullptr);
  char value[8] = {};
  size_t length = sizeof value;
  EXPECT_EQ(rbd_luks_metadata_get(image, "rbd-luks.k", value, &length), -ENOENT);
  ASSERT_EQ(rbd_luks_metadata_set(image, "rbd-luks.k", "a longer value"), 0);
  EXPECT_EQ(rbd_luks_metadata_get(image, "rbd-luks.k", value, &length), -ERANGE);
  EXPECT_EQ(length, 15u);
  std::vector<char> big(length);
  ASSERT_EQ(rbd_luks_metadata_get(image, "rbd-luks.k", big.data(), &length), 0);
  EXPECT_STREQ(big.data(), "a longer value");
  ASSERT_EQ(rbd_luks_metadata_remove(image, "rbd-luks.k"), 0);
  length = sizeof value;
  EXPECT_EQ(rbd_luks_metadata_get(image, "rbd-luks.k", value, &length), -ENOENT);
  EXPECT_EQ(rbd_luks_metadata_remove(image, "rbd-luks.k"), -ENOENT) << "as rbd_metadata_remove";

  ASSERT_EQ(rbd_luks_resize(image, 8 * kMiB), 0);
  uint64_t size = 0;
  ASSERT_EQ(rbd_luks_get_size(image, &size), 0);
  EXPECT_EQ(size, 8 * kMiB);
  EXPECT_EQ(rbd_luks_resize(image, 8 * kMiB + 1), -EINVAL);
  EXPECT_EQ(rbd_luks_close(image), 0);
}

// ---- The C++ API ----

class ImageApiTest : public EncryptedRbdFixture {};

TEST_F(ImageApiTest, OpenReadWriteAsyncAndErrors) {
  const std::string name = create_luks_image(8 * kMiB);
  auto wrong = Image::open(io(), name, bytes_of("nope"));
  ASSERT_FALSE(wrong);
  EXPECT_TRUE(wrong.error().is(Errc::bad_key)) << wrong.error().message();

  Image::OpenOptions options;
  options.crypto_threads = 1;
  auto image = Image::open(io(), name, bytes_of(kPassphrase), options);
  ASSERT_TRUE(image) << image.error().message();
  Image& img = **image;
  EXPECT_EQ(img.name(), "rbd:rbd/" + name);
  EXPECT_EQ(img.sector_size(), 4096u);
  EXPECT_EQ(*img.size(), 8 * kMiB);

  const auto data = random_bytes(300000, 3);
  ASSERT_TRUE(img.write(12345, data));
  std::vector<uint8_t> got(data.size());
  ASSERT_TRUE(img.read(12345, got));
  EXPECT_EQ(got, data);

  std::mutex mutex;
  std::condition_variable cv;
  std::vector<ssize_t> results;
  auto done = [&](ssize_t r) {
    const std::lock_guard lock(mutex);
    results.push_back(r);
    cv.notify_all();
  };
  std::vector<uint8_t> async_got(1000);
  ASSERT_TRUE(img.aio_write(0, std::span(data).first(1000), done));
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return results.size() == 1; }));
  }
  ASSERT_TRUE(img.aio_read(0, async_got, done));
  ASSERT_TRUE(img.aio_flush(done));
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return results.size() == 3; }));
  }
  EXPECT_EQ(results[0], 1000);
  EXPECT_EQ(std::count(results.begin() + 1, results.end(), 1000) + std::count(results.begin() + 1, results.end(), 0),
            2);
  EXPECT_TRUE(std::equal(async_got.begin(), async_got.end(), data.begin()));

  // The synchronous C++ calls report no byte count, so they refuse a range that runs past the end.
  auto past_end = img.read(8 * kMiB - 1, std::span(got).first(2));
  ASSERT_FALSE(past_end);
  EXPECT_EQ(past_end.error().code(), std::make_error_code(std::errc::invalid_argument));
  EXPECT_NE(past_end.error().message().find("read of 2 bytes at 8388607"), std::string::npos)
      << past_end.error().message();

  ASSERT_TRUE(img.metadata_set("rbd-luks.k", "v"));
  EXPECT_EQ(img.metadata_get("rbd-luks.k")->value_or(""), "v");
  ASSERT_TRUE(img.resize(4 * kMiB));
  EXPECT_EQ(*img.size(), 4 * kMiB);
  const Status closed = img.close();
  EXPECT_TRUE(closed) << closed.error().message();
}

// Image::reencrypt reports its progress and can be stopped; a stopped run keeps this image serving
// the data under both keys, while a new open is refused until the run is finished.
TEST_F(ImageApiTest, ReencryptReportsProgressAndStops) {
  const std::string name = create_luks_image(8 * kMiB);
  auto image = Image::open(io(), name, bytes_of(kPassphrase));
  ASSERT_TRUE(image) << image.error().message();
  const auto data = random_bytes(8 * kMiB, 9);
  ASSERT_TRUE((*image)->write(0, data));
  Image::ReencryptOptions options;
  options.hotzone_bytes = kMiB;
  std::vector<uint64_t> progress;
  options.progress = [&](uint64_t done, uint64_t total) {
    EXPECT_EQ(total, 8 * kMiB);
    progress.push_back(done);
  };
  options.stop_requested = [&] { return progress.size() == 3; };
  const Status stopped = (*image)->reencrypt({bytes_of(kPassphrase)}, options);
  ASSERT_FALSE(stopped);
  EXPECT_TRUE(stopped.error().is(Errc::failure)) << stopped.error().message();
  EXPECT_EQ(progress, (std::vector<uint64_t>{kMiB, 2 * kMiB, 3 * kMiB}));
  std::vector<uint8_t> got(data.size());
  const Status read = (*image)->read(0, got);
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_TRUE(got == data) << "the data across the boundary of a stopped run";
  auto another = Image::open(io(), name, bytes_of(kPassphrase));
  ASSERT_FALSE(another);
  const Status rolled_back = (*image)->snap_rollback("any");
  ASSERT_FALSE(rolled_back);
  EXPECT_NE(rolled_back.error().message().find("a reencryption of it is running or stopped half way"),
            std::string::npos)
      << rolled_back.error().message();
  EXPECT_TRUE((*image)->close());
}

// Without a hotzone size an online run moves one RBD object (4 MiB) per step, not the offline
// commands' 64 MiB, so that a request waits for a short step at most.
TEST_F(ImageApiTest, ReencryptMovesOneObjectPerStepByDefault) {
  const std::string name = create_luks_image(12 * kMiB);
  auto image = Image::open(io(), name, bytes_of(kPassphrase));
  ASSERT_TRUE(image) << image.error().message();
  std::vector<uint64_t> progress;
  Image::ReencryptOptions options;
  options.progress = [&](uint64_t done, uint64_t) { progress.push_back(done); };
  const Status reencrypted = (*image)->reencrypt({bytes_of(kPassphrase)}, options);
  ASSERT_TRUE(reencrypted) << reencrypted.error().message();
  EXPECT_EQ(progress, (std::vector<uint64_t>{4 * kMiB, 8 * kMiB, 12 * kMiB}));
  EXPECT_TRUE((*image)->close());
}

}  // namespace
}  // namespace rbdluks
