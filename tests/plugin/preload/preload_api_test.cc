// librbd's C API as a program on it sees it with librbd_luks_preload.so preloaded, on an encrypted
// image that opted in and on a plain image, with the same expectations for both: librbd's own
// behaviour is the reference. Run by preload_c_api.sh, which creates the images and sets
// LD_PRELOAD; this binary links only librados and librbd.
#include <gtest/gtest.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct Kind {
  const char* name;
  const char* environment;  // which image: set by preload_c_api.sh
  bool encrypted;
};
const Kind kPlain{"plain", "PRELOAD_TEST_PLAIN", false};
const Kind kEncrypted{"encrypted", "PRELOAD_TEST_ENCRYPTED", true};

class PreloadApiTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    const char* name = std::getenv(GetParam().environment);
    ASSERT_NE(name, nullptr) << "run through preload_c_api.sh";
    name_ = name;
    ASSERT_EQ(rados_create(&cluster_, nullptr), 0);
    ASSERT_EQ(rados_conf_read_file(cluster_, nullptr), 0);
    ASSERT_EQ(rados_connect(cluster_), 0);
    ASSERT_EQ(rados_ioctx_create(cluster_, "rbd", &io_), 0);
    ASSERT_EQ(rbd_open(io_, name_.c_str(), &image_, nullptr), 0);
    ASSERT_EQ(rbd_get_size(image_, &size_), 0);
  }
  void TearDown() override {
    if (image_ != nullptr) {
      EXPECT_EQ(rbd_close(image_), 0);
    }
    if (io_ != nullptr) rados_ioctx_destroy(io_);
    if (cluster_ != nullptr) rados_shutdown(cluster_);
  }

  std::string name_;
  rados_t cluster_ = nullptr;
  rados_ioctx_t io_ = nullptr;
  rbd_image_t image_ = nullptr;
  uint64_t size_ = 0;
};

std::vector<char> pattern(size_t n, char seed) {
  std::vector<char> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>(seed + i * 7 + i / 4096);
  return bytes;
}

TEST_P(PreloadApiTest, SizesAreThePlaintextsAndResizeSetsThem) {
  // preload_c_api.sh makes both 32 MiB of data.
  EXPECT_EQ(size_, uint64_t{32} << 20);
  rbd_image_info_t info{};
  ASSERT_EQ(rbd_stat(image_, &info, sizeof info), 0);
  EXPECT_EQ(info.size, size_);
  ASSERT_EQ(rbd_resize(image_, size_ + (4 << 20)), 0);
  uint64_t grown = 0;
  ASSERT_EQ(rbd_get_size(image_, &grown), 0);
  EXPECT_EQ(grown, size_ + (4 << 20));
  // librbd calls the progress function without checking it for null.
  const librbd_progress_fn_t progress = [](uint64_t, uint64_t, void*) { return 0; };
  ASSERT_EQ(rbd_resize2(image_, size_, false, progress, nullptr), -EINVAL) << "a shrink without allow_shrink";
  ASSERT_EQ(rbd_resize2(image_, size_, true, progress, nullptr), 0);
}

TEST_P(PreloadApiTest, SynchronousCallsClipAtTheEndAsLibrbdDoes) {
  const auto data = pattern(10000, 3);
  ASSERT_EQ(rbd_write(image_, 4097, data.size(), data.data()), static_cast<ssize_t>(data.size()));
  std::vector<char> back(data.size());
  ASSERT_EQ(rbd_read(image_, 4097, back.size(), back.data()), static_cast<ssize_t>(back.size()));
  EXPECT_EQ(back, data);
  std::vector<char> tail(4096);
  EXPECT_EQ(rbd_read(image_, size_ - 100, tail.size(), tail.data()), 100);
  EXPECT_EQ(rbd_read(image_, size_, tail.size(), tail.data()), -EINVAL);
  EXPECT_EQ(rbd_read(image_, size_ + 1, tail.size(), tail.data()), -EINVAL);
  EXPECT_EQ(rbd_write(image_, size_ - 100, tail.size(), tail.data()), 100);
  EXPECT_EQ(rbd_write_zeroes(image_, 4097, 5000, 0, 0), 5000);
  ASSERT_EQ(rbd_read(image_, 4097, 5000, back.data()), 5000);
  EXPECT_EQ(std::vector<char>(back.begin(), back.begin() + 5000), std::vector<char>(5000, 0));
  // librbd skips partial discards (rbd_skip_partial_discard); rbd-luks zeroes them.
  EXPECT_EQ(rbd_discard(image_, 9097, 5000), 5000);
  if (GetParam().encrypted) {
    ASSERT_EQ(rbd_read(image_, 9097, 5000, back.data()), 5000);
    EXPECT_EQ(std::vector<char>(back.begin(), back.begin() + 5000), std::vector<char>(5000, 0));
  }
  EXPECT_EQ(rbd_flush(image_), 0);
}

// librbd's order (io/AioCompletion.cc, complete()): rbd_aio_is_complete is true from the callback
// on; the completion reaches the event queue after the callback; rbd_aio_wait_for_complete returns
// after both.
TEST_P(PreloadApiTest, CompletionsFollowLibrbdsOrder) {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_SEMAPHORE);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(rbd_set_image_notification(image_, fd, EVENT_TYPE_EVENTFD), 0);
  struct Seen {
    rbd_image_t image;
    std::atomic<int> complete_in_callback{-1};
    std::atomic<ssize_t> value_in_callback{0};
    std::atomic<int> queued_in_callback{-1};
    std::atomic<bool> callback_returned{false};
  } seen{image_};
  rbd_completion_t c = nullptr;
  ASSERT_EQ(rbd_aio_create_completion(
                &seen,
                [](rbd_completion_t done, void* arg) {
                  auto* s = static_cast<Seen*>(arg);
                  s->complete_in_callback = rbd_aio_is_complete(done);
                  s->value_in_callback = rbd_aio_get_return_value(done);
                  rbd_completion_t polled[4];
                  s->queued_in_callback = rbd_poll_io_events(s->image, polled, 4);
                  std::this_thread::sleep_for(200ms);
                  s->callback_returned = true;
                },
                &c),
            0);
  EXPECT_EQ(rbd_aio_get_arg(c), &seen);
  const auto data = pattern(6000, 9);
  ASSERT_EQ(rbd_aio_write(image_, 123, data.size(), data.data(), c), 0);
  ASSERT_EQ(rbd_aio_wait_for_complete(c), 0);
  EXPECT_TRUE(seen.callback_returned) << "wait_for_complete returned before the callback did";
  EXPECT_EQ(seen.complete_in_callback, 1);
  EXPECT_EQ(seen.value_in_callback, 0) << "librbd reports 0 for a write, not its bytes";
  EXPECT_EQ(seen.queued_in_callback, 0) << "queued before the callback";
  EXPECT_EQ(rbd_aio_is_complete(c), 1);
  EXPECT_EQ(rbd_aio_get_return_value(c), 0);
  std::vector<char> back(data.size());
  rbd_completion_t reading = nullptr;
  ASSERT_EQ(rbd_aio_create_completion(nullptr, nullptr, &reading), 0);
  ASSERT_EQ(rbd_aio_read(image_, 123, back.size(), back.data(), reading), 0);
  ASSERT_EQ(rbd_aio_wait_for_complete(reading), 0);
  EXPECT_EQ(rbd_aio_get_return_value(reading), 6000) << "a read's completion carries its bytes";
  EXPECT_EQ(back, data);
  uint64_t count = 0;
  ASSERT_EQ(read(fd, &count, sizeof count), static_cast<ssize_t>(sizeof count));
  EXPECT_EQ(count, 1u);
  EXPECT_EQ(count, 1u);
  rbd_completion_t polled[4] = {};
  ASSERT_EQ(rbd_poll_io_events(image_, polled, 4), 2);
  EXPECT_EQ(polled[0], c);
  EXPECT_EQ(polled[1], reading);
  rbd_aio_release(c);
  rbd_aio_release(reading);
  close(fd);
}

// QEMU and fio release a completion inside its own callback.
TEST_P(PreloadApiTest, CompletionsReleasedInsideTheirCallbacks) {
  struct Done {
    std::mutex mutex;
    std::condition_variable changed;
    int count = 0;
    int failed = 0;
  } done;
  constexpr int kRequests = 64;
  std::vector<std::vector<char>> buffers;
  for (int i = 0; i < kRequests; ++i) buffers.push_back(pattern(3000 + i, static_cast<char>(i)));
  for (int i = 0; i < kRequests; ++i) {
    rbd_completion_t c = nullptr;
    ASSERT_EQ(rbd_aio_create_completion(
                  &done,
                  [](rbd_completion_t finished, void* arg) {
                    auto* d = static_cast<Done*>(arg);
                    const ssize_t r = rbd_aio_get_return_value(finished);
                    rbd_aio_release(finished);
                    const std::lock_guard lock(d->mutex);
                    d->failed += r < 0;
                    ++d->count;
                    d->changed.notify_all();
                  },
                  &c),
              0);
    const iovec iov[2] = {{buffers[i].data(), 1000}, {buffers[i].data() + 1000, buffers[i].size() - 1000}};
    ASSERT_EQ(rbd_aio_writev(image_, iov, 2, uint64_t(i) * 65536 + 17, c), 0);
  }
  std::unique_lock lock(done.mutex);
  ASSERT_TRUE(done.changed.wait_for(lock, 60s, [&] { return done.count == kRequests; }));
  EXPECT_EQ(done.failed, 0);
  lock.unlock();
  for (int i = 0; i < kRequests; ++i) {
    std::vector<char> back(buffers[i].size());
    ASSERT_EQ(rbd_read(image_, uint64_t(i) * 65536 + 17, back.size(), back.data()), static_cast<ssize_t>(back.size()));
    EXPECT_EQ(back, buffers[i]) << "request " << i;
  }
}

TEST_P(PreloadApiTest, DiffIterationReportsPlaintextExtents) {
  ASSERT_EQ(rbd_discard(image_, 0, size_), static_cast<int>(size_));
  const auto data = pattern(4096, 1);
  ASSERT_EQ(rbd_write(image_, 5 << 20, data.size(), data.data()), 4096);
  std::vector<std::pair<uint64_t, uint64_t>> extents;
  ASSERT_EQ(rbd_diff_iterate2(
                image_, nullptr, 0, size_, 1, 1,
                [](uint64_t offset, size_t length, int exists, void* arg) {
                  if (exists) static_cast<decltype(extents)*>(arg)->emplace_back(offset, length);
                  return 0;
                },
                &extents),
            0);
  ASSERT_FALSE(extents.empty());
  uint64_t covered = 0;
  for (const auto& [offset, length] : extents) {
    EXPECT_LE(offset + length, size_);
    covered += length;
  }
  const bool holds_write = std::any_of(extents.begin(), extents.end(), [](const auto& e) {
    return e.first <= (5u << 20) && e.first + e.second >= (5u << 20) + 4096;
  });
  EXPECT_TRUE(holds_write) << "the written block is not in an extent";
  EXPECT_LE(covered, uint64_t{8} << 20) << "more than two objects reported for one block";
}

TEST_P(PreloadApiTest, SnapshotsMetadataAndAsynchronousOpenAndClose) {
  ASSERT_EQ(rbd_metadata_set(image_, "test.key", "value"), 0);
  char value[32] = {};
  size_t length = sizeof value;
  ASSERT_EQ(rbd_metadata_get(image_, "test.key", value, &length), 0);
  EXPECT_STREQ(value, "value");
  ASSERT_EQ(rbd_metadata_remove(image_, "test.key"), 0);

  const auto before = pattern(4096, 5);
  ASSERT_EQ(rbd_write(image_, 0, before.size(), before.data()), 4096);
  ASSERT_EQ(rbd_snap_create(image_, "s1"), 0);
  const auto after = pattern(4096, 6);
  ASSERT_EQ(rbd_write(image_, 0, after.size(), after.data()), 4096);
  rbd_snap_info_t snaps[4];
  int max = 4;
  ASSERT_EQ(rbd_snap_list(image_, snaps, &max), 1);
  EXPECT_EQ(snaps[0].size, size_) << "a snapshot's size is its plaintext's";
  rbd_snap_list_end(snaps);
  ASSERT_EQ(rbd_snap_rollback(image_, "s1"), 0);
  std::vector<char> back(4096);
  ASSERT_EQ(rbd_read(image_, 0, back.size(), back.data()), 4096);
  EXPECT_EQ(back, before);

  // The snapshot opened read-only, asynchronously, and closed the same way.
  rbd_image_t snapshot = nullptr;
  rbd_completion_t c = nullptr;
  ASSERT_EQ(rbd_aio_create_completion(nullptr, nullptr, &c), 0);
  ASSERT_EQ(rbd_aio_open(io_, name_.c_str(), &snapshot, "s1", c), 0);
  ASSERT_EQ(rbd_aio_wait_for_complete(c), 0);
  ASSERT_EQ(rbd_aio_get_return_value(c), 0);
  rbd_aio_release(c);
  uint64_t snapshot_size = 0;
  ASSERT_EQ(rbd_get_size(snapshot, &snapshot_size), 0);
  EXPECT_EQ(snapshot_size, size_);
  ASSERT_EQ(rbd_read(snapshot, 0, back.size(), back.data()), 4096);
  EXPECT_EQ(back, before);
  EXPECT_LT(rbd_write(snapshot, 0, back.size(), back.data()), 0) << "a snapshot took a write";
  ASSERT_EQ(rbd_aio_create_completion(nullptr, nullptr, &c), 0);
  ASSERT_EQ(rbd_aio_close(snapshot, c), 0);
  ASSERT_EQ(rbd_aio_wait_for_complete(c), 0);
  EXPECT_EQ(rbd_aio_get_return_value(c), 0);
  rbd_aio_release(c);
  ASSERT_EQ(rbd_snap_remove(image_, "s1"), 0);
}

// Calls with no plaintext meaning fail cleanly on an encrypted image and reach librbd on a plain one.
TEST_P(PreloadApiTest, CallsWithoutAPlaintextMeaning) {
  if (GetParam().encrypted) {
    EXPECT_EQ(rbd_sparsify(image_, 4096), -EOPNOTSUPP);
    EXPECT_EQ(rbd_writesame(image_, 0, 8192, "abcd", 4, 0), -EOPNOTSUPP);
    EXPECT_EQ(rbd_encryption_load(image_, RBD_ENCRYPTION_FORMAT_LUKS2, nullptr, 0), -EEXIST);
  } else {
    EXPECT_EQ(rbd_sparsify(image_, 4096), 0);
    EXPECT_EQ(rbd_writesame(image_, 0, 8192, "abcd", 4, 0), 8192);
  }
}

TEST_P(PreloadApiTest, WriteZeroesFlags) {
  const auto data = pattern(8192, 4);
  ASSERT_EQ(rbd_write(image_, 4096, data.size(), data.data()), 8192);
  EXPECT_EQ(rbd_write_zeroes(image_, 4096, 8192, RBD_WRITE_ZEROES_FLAG_THICK_PROVISION, 0), 8192);
  std::vector<char> back(8192);
  ASSERT_EQ(rbd_read(image_, 4096, back.size(), back.data()), 8192);
  EXPECT_EQ(back, std::vector<char>(8192, 0));
  EXPECT_EQ(rbd_write_zeroes(image_, 4096, 8192, 1 << 8, 0), -EINVAL) << "an unknown zero flag";
}

// librbd may run a callback on another thread after rbd_aio_is_complete turned true; a program
// that polls and then releases must not leave the callback a freed completion (ASan run).
TEST_P(PreloadApiTest, CompletionsReleasedAsSoonAsTheyReportComplete) {
  std::vector<char> buffer(4096);
  for (int i = 0; i < 200; ++i) {
    rbd_completion_t c = nullptr;
    ASSERT_EQ(rbd_aio_create_completion(nullptr, nullptr, &c), 0);
    ASSERT_EQ(rbd_aio_read(image_, uint64_t(i) * 4096, buffer.size(), buffer.data(), c), 0);
    while (rbd_aio_is_complete(c) == 0) std::this_thread::yield();
    EXPECT_EQ(rbd_aio_get_return_value(c), 4096);
    rbd_aio_release(c);
  }
  rbd_completion_t unused = nullptr;
  ASSERT_EQ(rbd_aio_create_completion(nullptr, nullptr, &unused), 0);
  rbd_aio_release(unused);
}

INSTANTIATE_TEST_SUITE_P(Images, PreloadApiTest, ::testing::Values(kPlain, kEncrypted),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace

namespace {

// rbd_copy2 takes two image handles: either may be an encrypted image's.
TEST(PreloadTwoImagesTest, CopyBetweenAPlainAndAnEncryptedImageIsRefused) {
  const char* plain_name = std::getenv(kPlain.environment);
  const char* encrypted_name = std::getenv(kEncrypted.environment);
  ASSERT_TRUE(plain_name != nullptr && encrypted_name != nullptr) << "run through preload_c_api.sh";
  rados_t cluster = nullptr;
  ASSERT_EQ(rados_create(&cluster, nullptr), 0);
  ASSERT_EQ(rados_conf_read_file(cluster, nullptr), 0);
  ASSERT_EQ(rados_connect(cluster), 0);
  rados_ioctx_t io = nullptr;
  ASSERT_EQ(rados_ioctx_create(cluster, "rbd", &io), 0);
  rbd_image_t plain = nullptr;
  rbd_image_t encrypted = nullptr;
  ASSERT_EQ(rbd_open(io, plain_name, &plain, nullptr), 0);
  ASSERT_EQ(rbd_open(io, encrypted_name, &encrypted, nullptr), 0);
  EXPECT_EQ(rbd_copy2(plain, encrypted), -EOPNOTSUPP);
  EXPECT_EQ(rbd_copy2(encrypted, plain), -EOPNOTSUPP);
  EXPECT_EQ(rbd_close(encrypted), 0);
  EXPECT_EQ(rbd_close(plain), 0);
  rados_ioctx_destroy(io);
  rados_shutdown(cluster);
}

}  // namespace
