// EncryptedRbdImage against a real cluster: round trips of every alignment at both ends and across
// RADOS objects, scatter/gather, sync and async, holes, write_zeroes and discard, range errors,
// untouched caller buffers, snapshots, clones sharing the parent's key, resize, metadata, open
// errors, and interoperability with librbd's native LUKS1/LUKS2 encryption in both directions.
// Also the WorkerPool the layer runs its crypto on.
#include "encrypted_rbd_image.h"

#include <gtest/gtest.h>
#include <rbd/librbd.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "cluster_faults.h"
#include "encrypted_rbd_fixture.h"
#include "process_memory.h"

namespace rbdluks {
namespace {

using namespace rbdluks::testing;

// Collects the results of asynchronous requests and waits for all of them.
class Completions {
 public:
  EncryptedRbdImage::Callback add() {
    const std::lock_guard lock(mutex_);
    ++outstanding_;
    return [this](ssize_t r) {
      const std::lock_guard guard(mutex_);
      results_.push_back(r);
      if (--outstanding_ == 0) done_.notify_all();
    };
  }
  std::vector<ssize_t> wait() {
    std::unique_lock lock(mutex_);
    EXPECT_TRUE(done_.wait_for(lock, std::chrono::seconds(60), [&] { return outstanding_ == 0; }));
    return results_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  int outstanding_ = 0;
  std::vector<ssize_t> results_;
};

class EncryptedRbdImageTest : public EncryptedRbdFixture {
 protected:
  std::unique_ptr<EncryptedRbdImage> open(const std::string& name, std::optional<std::string> snapshot = {},
                                          bool read_only = false, const std::string& passphrase = kPassphrase) {
    auto image = EncryptedRbdImage::open(io(), name, snapshot, read_only, bytes_of(passphrase));
    EXPECT_TRUE(image) << image.error().message();
    return image ? std::move(*image) : nullptr;
  }

  // Reads the whole plaintext (in 3 MiB reads, which are not object-aligned) and compares it.
  static void expect_contents(EncryptedRbdImage& image, const std::vector<uint8_t>& model) {
    ASSERT_EQ(*image.size(), model.size());
    std::vector<uint8_t> got(model.size(), 0xee);
    for (uint64_t at = 0; at < model.size(); at += 3 * kMiB) {
      const size_t n = std::min<uint64_t>(3 * kMiB, model.size() - at);
      ASSERT_EQ(image.read(at, std::span(got).subspan(at, n)), static_cast<ssize_t>(n));
    }
    const auto diff = std::mismatch(got.begin(), got.end(), model.begin());
    EXPECT_TRUE(diff.first == got.end()) << "first difference at plaintext offset " << (diff.first - got.begin());
  }

  static void write_and_model(EncryptedRbdImage& image, std::vector<uint8_t>& model, uint64_t offset, size_t length,
                              uint64_t seed) {
    const auto data = random_bytes(length, seed);
    ASSERT_EQ(image.write(offset, data), static_cast<ssize_t>(length)) << "write at " << offset;
    std::copy(data.begin(), data.end(), model.begin() + offset);
  }
};

// ---- Round trips, for each sector size ----

class RoundTripTest : public EncryptedRbdImageTest, public ::testing::WithParamInterface<LuksFormat> {};

TEST_P(RoundTripTest, AlignedAndUnalignedWritesAtBothEndsAndAcrossObjects) {
  const uint64_t size = 12 * kMiB;
  const std::string name = create_luks_image(size, GetParam());
  auto image = open(name);
  ASSERT_TRUE(image);
  ASSERT_EQ(*image->size(), size);
  EXPECT_EQ(image->layout().sector_size, GetParam().version == 1 ? 512u : GetParam().sector_size);
  // Pieces are stripe units (at most 4 MiB), so no piece and no sector spans two objects, unless
  // a sector is larger than a stripe unit.
  const LuksFormat& format = GetParam();
  EXPECT_EQ(image->piece_bytes(), format.stripe_unit != 0 ? 4 * kMiB
                                  : format.order != 0     ? uint64_t{1} << format.order
                                                          : 4 * kMiB);
  std::vector<uint8_t> model(size, 0);

  write_and_model(*image, model, 0, 4096, 1);                          // first sectors, aligned
  write_and_model(*image, model, 100, 5000, 2);                        // unaligned inside the head
  write_and_model(*image, model, 4 * kMiB - 3000, 5 * kMiB + 123, 3);  // large: crosses two objects
  write_and_model(*image, model, 9 * kMiB + 1, 1, 4);                  // one byte
  write_and_model(*image, model, size - 777, 777, 5);                  // the very end, unaligned start
  write_and_model(*image, model, size - 8192, 8192, 6);                // the very end, aligned
  expect_contents(*image, model);

  // Unaligned reads of every shape, small and large.
  for (const auto& [offset, length] : std::vector<std::pair<uint64_t, size_t>>{
           {1, 1}, {511, 2}, {4095, 4098}, {4 * kMiB - 1, 2}, {3 * kMiB + 17, 6 * kMiB}, {size - 1, 1}}) {
    std::vector<uint8_t> got(length);
    ASSERT_EQ(image->read(offset, got), static_cast<ssize_t>(length));
    EXPECT_TRUE(std::equal(got.begin(), got.end(), model.begin() + offset)) << "read at " << offset;
  }

  // Everything is in the cluster, not in this handle.
  image.reset();
  auto reopened = open(name);
  ASSERT_TRUE(reopened);
  expect_contents(*reopened, model);
}

// Besides the formats, layouts where the piece grid matters: 1 MiB objects; qemu-img's LUKS1 data
// offset (4040 sectors), which puts object boundaries in the middle of 4096-byte pages; and a
// 2048-byte stripe unit, where 4096-byte sectors straddle objects (reads then take the range lock).
INSTANTIATE_TEST_SUITE_P(Formats, RoundTripTest,
                         ::testing::Values(LuksFormat{2, 4096}, LuksFormat{2, 512}, LuksFormat{1, 512},
                                           LuksFormat{2, 4096, 0, 20}, LuksFormat{1, 512, 4040 * 512},
                                           LuksFormat{2, 4096, 0, 20, 2048, 4}),
                         [](const auto& param_info) {
                           const LuksFormat& format = param_info.param;
                           return "luks" + std::to_string(format.version) + "_" +
                                  std::to_string(format.version == 1 ? 512 : format.sector_size) +
                                  (format.order != 0 ? "_order" + std::to_string(format.order) : "") +
                                  (format.stripe_unit != 0 ? "_stripe" + std::to_string(format.stripe_unit) : "") +
                                  (format.data_offset != 0 ? "_offset" + std::to_string(format.data_offset) : "");
                         });

// ---- Scatter/gather and asynchronous requests ----

TEST_F(EncryptedRbdImageTest, ScatterGatherAsyncRoundTrip) {
  const uint64_t size = 8 * kMiB;
  auto image = open(create_luks_image(size));
  ASSERT_TRUE(image);
  std::vector<uint8_t> model(size, 0);

  // Many requests in flight at once, each a writev of odd-sized pieces at an unaligned offset.
  Completions writes;
  std::vector<std::vector<uint8_t>> sources;
  std::vector<std::vector<iovec>> vectors;
  for (int i = 0; i < 24; ++i) {
    const uint64_t offset = static_cast<uint64_t>(i) * 300000 + 123;
    sources.push_back(random_bytes(1000 + 7000 + 3000 + 200000, 100 + i));
    auto& data = sources.back();
    std::copy(data.begin(), data.end(), model.begin() + offset);
    vectors.push_back(
        {{data.data(), 1000}, {data.data() + 1000, 7000}, {data.data() + 8000, 3000}, {data.data() + 11000, 200000}});
    image->aio_writev(offset, vectors.back(), writes.add());
  }
  for (ssize_t r : writes.wait()) EXPECT_EQ(r, 211000);

  // Reads into iovecs that split sectors (bounce path) and that keep sectors whole (direct path),
  // each at an aligned and an unaligned offset, all in flight at once.
  struct Read {
    uint64_t offset;
    std::vector<uint8_t> got;
    std::vector<iovec> iov;
  };
  std::vector<Read> reads;
  for (const auto& cuts : std::vector<std::vector<size_t>>{{4096, 8192, 4096}, {1, 4095, 5000, 7288}, {16384}}) {
    for (uint64_t offset : {uint64_t{4096} * 40, uint64_t{4096} * 40 + 1}) {
      Read read{offset, {}, {}};
      for (size_t c : cuts) read.got.resize(read.got.size() + c, 0xee);
      size_t at = 0;
      for (size_t c : cuts) {
        read.iov.push_back({read.got.data() + at, c});
        at += c;
      }
      reads.push_back(std::move(read));
    }
  }
  Completions done;
  for (auto& read : reads) image->aio_readv(read.offset, read.iov, done.add());
  for (ssize_t r : done.wait()) EXPECT_EQ(r, 16384);
  for (const auto& read : reads) {
    EXPECT_TRUE(std::equal(read.got.begin(), read.got.end(), model.begin() + read.offset))
        << "read at " << read.offset << " into " << read.iov.size() << " iovecs";
  }
  expect_contents(*image, model);
}

// Write ciphertext is handed to librbd in buffers it holds a reference to. With librbd's cache on
// a write completes to us before the OSDs have it: under its default policy (writearound) while
// librbd still sends from the buffer, under the write-back policy while the buffer waits in the
// cache for the flush. With the cache off a write completes only once the OSDs have it. (Each is
// set for one image through its conf_ metadata.) Every way, many overlapping writes in flight,
// whole and partial sectors, land intact: this handle reads them back at once (through librbd's
// cache where there is one, which a compare-and-write would leave stale), and another client reads
// them after the flush, from the cluster and not from this handle's cache.
TEST_F(EncryptedRbdImageTest, WritesInFlightLandIntactWithLibrbdsCacheOnAndOff) {
  const std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> modes = {
      {"librbd cache on", {}},
      {"librbd cache on, write-back",
       {{"conf_rbd_cache_policy", "writeback"},
        {"conf_rbd_cache_writethrough_until_flush", "false"},
        {"conf_rbd_cache_max_dirty_age", "60"}}},
      {"librbd cache on, write-through", {{"conf_rbd_cache_policy", "writethrough"}}},
      // An override is listed as stored: "1" is on, as Ceph reads a bool.
      {"librbd cache on as 1, write-back", {{"conf_rbd_cache", "1"}, {"conf_rbd_cache_policy", "writeback"}}},
      {"librbd cache off", {{"conf_rbd_cache", "false"}}},
  };
  for (const auto& [mode, settings] : modes) {
    SCOPED_TRACE(mode);
    const uint64_t size = 16 * kMiB;
    const std::string name = create_luks_image(size);
    {
      auto raw = open_rbd_image(connection_, RbdImageSpec{kPool, "", name, std::nullopt}, OpenMode::read_write);
      ASSERT_TRUE(raw) << raw.error().message();
      for (const auto& [key, value] : settings) ASSERT_TRUE((*raw)->set_metadata(key, value));
    }
    auto raw = open_rbd_image(connection_, RbdImageSpec{kPool, "", name, std::nullopt}, OpenMode::read_write);
    ASSERT_TRUE(raw) << raw.error().message();
    auto opened = EncryptedRbdImage::open(std::move(*raw), bytes_of(kPassphrase));
    ASSERT_TRUE(opened) << opened.error().message();
    auto& image = **opened;

    std::vector<uint8_t> model(size, 0);
    std::vector<std::vector<uint8_t>> sources;
    Completions writes;
    for (int i = 0; i < 14; ++i) {
      const uint64_t offset = static_cast<uint64_t>(i) * kMiB + (i % 2 ? 512 : 0);
      sources.push_back(random_bytes(i % 3 ? kMiB : 20000, 300 + i));
      std::copy(sources.back().begin(), sources.back().end(), model.begin() + static_cast<ptrdiff_t>(offset));
      image.aio_write(offset, sources.back(), writes.add());
    }
    std::vector<ssize_t> want, got = writes.wait();  // in completion order
    for (const auto& source : sources) want.push_back(static_cast<ssize_t>(source.size()));
    std::ranges::sort(want);
    std::ranges::sort(got);
    EXPECT_EQ(got, want);
    expect_contents(image, model);
    ASSERT_EQ(image.flush(), 0);
    const OwnClient other({});
    auto reader = EncryptedRbdImage::open(other.io(), name, std::nullopt, true, bytes_of(kPassphrase));
    ASSERT_TRUE(reader) << reader.error().message();
    expect_contents(**reader, model);
  }
}

// The write path's ciphertext buffers live as long as their requests, and the allocator gets them
// back whole: over 9 GiB of 4 MiB writes at queue depth 16, the process's peak resident memory stays
// within twice what those requests hold in flight (64 MiB of ciphertext, and as much again for
// librbd's and the allocator's own) above where it was before the first write. Measured on this
// test (AMD EPYC, family 25 model 17): 93-97 MiB; with page-aligned ciphertext buffers, which left
// glibc's heap fragmented, 213-221 MiB and growing with the run (and fio's 4 MiB writes held 3.2x
// the memory of plain librbd; docs/performance.md, "Memory").
TEST_F(EncryptedRbdImageTest, LongWriteRunHoldsOnlyTheMemoryOfItsRequestsInFlight) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's allocator keeps freed memory in quarantine: no memory bound holds";
#endif
  constexpr uint64_t kBlock = 4 * kMiB;
  constexpr size_t kDepth = 16;
  const uint64_t size = 64 * kMiB;
  const std::string name = create_luks_image(size);
  auto image = open(name);
  ASSERT_TRUE(image);
  std::vector<std::vector<uint8_t>> sources;
  for (size_t i = 0; i < kDepth; ++i) sources.push_back(random_bytes(kBlock, 700 + i));
  // As fio does: a new request as soon as one completes, at random blocks, so that allocations
  // and frees of the ciphertext interleave with librbd's own.
  std::mutex mutex;
  std::condition_variable changed;
  size_t in_flight = 0;
  ssize_t first_error = 0;
  uint64_t seed = 1;
  auto write_requests = [&](int count) {
    for (int i = 0; i < count; ++i) {
      std::unique_lock lock(mutex);
      changed.wait(lock, [&] { return in_flight < kDepth; });
      ++in_flight;
      lock.unlock();
      seed = seed * 6364136223846793005 + 1442695040888963407;
      const uint64_t offset = (seed >> 33) % (size / kBlock) * kBlock;
      image->aio_write(offset, sources[static_cast<size_t>(i) % kDepth], [&](ssize_t r) {
        const std::lock_guard guard(mutex);
        if (r != static_cast<ssize_t>(kBlock) && first_error == 0) first_error = r < 0 ? r : -EIO;
        --in_flight;
        changed.notify_all();
      });
    }
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(60), [&] { return in_flight == 0; }));
    ASSERT_EQ(first_error, 0);
    lock.unlock();
    ASSERT_EQ(image->flush(), 0);
  };
  const auto before = resident_bytes();
  ASSERT_TRUE(before && reset_peak_resident_bytes());
  write_requests(256 + 2048);
  const auto peak = peak_resident_bytes();
  ASSERT_TRUE(peak);
  EXPECT_LT(*peak - *before, 2 * kDepth * kBlock)
      << "resident " << (*before >> 20) << " MiB before the first write, peak " << (*peak >> 20) << " MiB";
}

// Large reads are decrypted on librbd's completion thread one at a time and on the workers while
// one is running there, so with many in flight both happen at once, into the callers' buffers.
// Each read, whole objects, object-crossing and unaligned, must get exactly its own plaintext.
TEST_F(EncryptedRbdImageTest, ManyLargeReadsInFlightEachGetTheirOwnPlaintext) {
  const uint64_t size = 24 * kMiB;
  auto image = open(create_luks_image(size));
  ASSERT_TRUE(image);
  const std::vector<uint8_t> model = random_bytes(size, 77);
  ASSERT_EQ(image->write(0, model), static_cast<ssize_t>(size));

  struct Read {
    uint64_t offset;
    std::vector<uint8_t> got;
  };
  std::vector<Read> reads;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 16; ++i) {
      const uint64_t length = i % 4 == 0 ? 4 * kMiB : (i % 4 == 1 ? 3 * kMiB + 4096 : 1 * kMiB + 777);
      const uint64_t offset = (static_cast<uint64_t>(i) * 5 * kMiB / 4 + (i % 3 ? 512 * i : 0)) % (size - length);
      reads.push_back({offset, std::vector<uint8_t>(length, 0xee)});
    }
  }
  Completions done;
  for (auto& read : reads) image->aio_read(read.offset, read.got, done.add());
  for (ssize_t r : done.wait()) EXPECT_GT(r, 0);
  for (const auto& read : reads) {
    EXPECT_TRUE(std::equal(read.got.begin(), read.got.end(), model.begin() + static_cast<ptrdiff_t>(read.offset)))
        << read.got.size() << " bytes at " << read.offset;
  }
}

TEST_F(EncryptedRbdImageTest, CallbacksNeverRunInsideTheSubmittingCall) {
  auto image = open(create_luks_image(4 * kMiB));
  ASSERT_TRUE(image);
  static thread_local bool submitting = false;
  std::atomic<int> inside{0};
  Completions done;
  auto check = [&](EncryptedRbdImage::Callback next) {
    return [&inside, next = std::move(next)](ssize_t r) {
      if (submitting) ++inside;
      next(r);
    };
  };
  std::vector<uint8_t> buffer(4096);
  submitting = true;
  image->aio_read(0, buffer, check(done.add()));                       // success
  image->aio_read(4 * kMiB, buffer, check(done.add()));                // range error
  image->aio_write(0, std::span(buffer).first(0), check(done.add()));  // nothing to do
  image->aio_flush(check(done.add()));
  submitting = false;
  auto results = done.wait();
  std::sort(results.begin(), results.end());
  EXPECT_EQ(results, (std::vector<ssize_t>{-EINVAL, 0, 0, 4096}));
  EXPECT_EQ(inside.load(), 0);
}

// ---- Holes, zeroing, discard ----

TEST_F(EncryptedRbdImageTest, NeverWrittenRangesReadAsZeros) {
  const std::string name = create_luks_image(8 * kMiB);
  auto image = open(name);
  ASSERT_TRUE(image);
  std::vector<uint8_t> got(3 * kMiB + 5, 0xee);
  ASSERT_EQ(image->read(1 * kMiB - 3, got), static_cast<ssize_t>(got.size()));
  EXPECT_TRUE(std::all_of(got.begin(), got.end(), [](uint8_t b) { return b == 0; }));

  // A partial write into a hole keeps the rest of its sector zero.
  const auto data = random_bytes(10, 7);
  ASSERT_EQ(image->write(4096 + 100, data), 10);
  std::vector<uint8_t> sector(4096);
  ASSERT_EQ(image->read(4096, sector), 4096);
  std::vector<uint8_t> expected(4096, 0);
  std::copy(data.begin(), data.end(), expected.begin() + 100);
  EXPECT_EQ(sector, expected);
}

TEST_F(EncryptedRbdImageTest, WriteZeroesAndDiscardLeaveZerosAndKeepTheEdges) {
  const uint64_t size = 12 * kMiB;
  const std::string name = create_luks_image(size);
  auto image = open(name);
  ASSERT_TRUE(image);
  std::vector<uint8_t> model(size, 0);
  write_and_model(*image, model, 0, size, 8);

  // Unaligned at both ends and covering a whole object in the middle.
  ASSERT_EQ(image->write_zeroes(3 * kMiB + 100, 6 * kMiB), static_cast<ssize_t>(6 * kMiB));
  std::fill_n(model.begin() + 3 * kMiB + 100, 6 * kMiB, 0);
  // Inside one sector, and aligned at the very end.
  ASSERT_EQ(image->discard(10 * kMiB + 5, 30), 30);
  std::fill_n(model.begin() + 10 * kMiB + 5, 30, 0);
  ASSERT_EQ(image->discard(size - 8192, 8192), 8192);
  std::fill_n(model.begin() + size - 8192, 8192, 0);
  // Asynchronously, unaligned.
  Completions done;
  image->aio_discard(1000, 70000, done.add());
  image->aio_write_zeroes(200000, 5, done.add());
  EXPECT_EQ(done.wait().size(), 2u);
  std::fill_n(model.begin() + 1000, 70000, 0);
  std::fill_n(model.begin() + 200000, 5, 0);
  expect_contents(*image, model);

  // Whole zeroed sectors are holes (all-zero ciphertext), as librbd's native encryption leaves them.
  auto raw = open_rbd_image(connection_, RbdImageSpec{kPool, "", name, std::nullopt}, OpenMode::read_only);
  ASSERT_TRUE(raw);
  std::vector<uint8_t> ciphertext(4096, 0xee);
  ASSERT_TRUE((*raw)->read(16 * kMiB + 5 * kMiB, ciphertext));
  EXPECT_TRUE(std::all_of(ciphertext.begin(), ciphertext.end(), [](uint8_t b) { return b == 0; }));
  // while a sector that was only partly zeroed holds ciphertext.
  ASSERT_TRUE((*raw)->read(16 * kMiB + 10 * kMiB, ciphertext));
  EXPECT_FALSE(std::all_of(ciphertext.begin(), ciphertext.end(), [](uint8_t b) { return b == 0; }));
}

// ---- Errors and the caller's buffers ----

// Requests at the end of the image behave as librbd's own on a plain image of the same size: cut
// short when they run past the end, -EINVAL when they start beyond it, and nothing past the end
// is written.
TEST_F(EncryptedRbdImageTest, RequestsPastTheEndBehaveAsInLibrbd) {
  const uint64_t size = 4 * kMiB;
  auto image = open(create_luks_image(size));
  ASSERT_TRUE(image);
  const std::string plain_name = fresh_name("plain");
  ASSERT_TRUE(create_raw(plain_name, size));
  rbd_image_t plain = nullptr;
  ASSERT_EQ(rbd_open(io(), plain_name.c_str(), &plain, nullptr), 0);

  std::vector<uint8_t> buffer(8192, 1);
  auto* chars = reinterpret_cast<char*>(buffer.data());
  struct Case {
    uint64_t offset;
    size_t length;
  };
  for (const Case c : {Case{size - 4096, 8192}, Case{size - 1, 2}, Case{size, 0}, Case{size, 10}, Case{size + 1, 0},
                       Case{size + 1, 10}}) {
    SCOPED_TRACE("offset " + std::to_string(c.offset) + " length " + std::to_string(c.length));
    EXPECT_EQ(image->write(c.offset, std::span(buffer).first(c.length)), rbd_write(plain, c.offset, c.length, chars));
    EXPECT_EQ(image->read(c.offset, std::span(buffer).first(c.length)), rbd_read(plain, c.offset, c.length, chars));
    EXPECT_EQ(image->write_zeroes(c.offset, c.length), rbd_write_zeroes(plain, c.offset, c.length, 0, 0));
  }
  EXPECT_EQ(image->discard(UINT64_MAX, 1), -EINVAL);
  rbd_close(plain);
  auto current = image->size();
  ASSERT_TRUE(current);
  EXPECT_EQ(*current, size) << "writes past the end must not grow the image";
}

TEST_F(EncryptedRbdImageTest, WritesNeverModifyTheCallersBuffer) {
  auto image = open(create_luks_image(12 * kMiB));
  ASSERT_TRUE(image);
  const auto data = random_bytes(5 * kMiB + 333, 9);
  auto buffer = data;
  ASSERT_EQ(image->write(0, buffer), static_cast<ssize_t>(buffer.size()));             // aligned, large
  ASSERT_EQ(image->write(4 * kMiB + 7, buffer), static_cast<ssize_t>(buffer.size()));  // unaligned
  ASSERT_EQ(image->write(4096, std::span(buffer).first(4096)), 4096);                  // small, inline crypto
  const iovec iov[] = {{buffer.data(), 1000}, {buffer.data() + 1000, 8192}};
  Completions done;
  image->aio_writev(8 * kMiB + 1, iov, done.add());
  EXPECT_EQ(done.wait(), std::vector<ssize_t>{9192});
  EXPECT_EQ(buffer, data);
}

TEST_F(EncryptedRbdImageTest, OpenErrors) {
  const std::string name = create_luks_image(4 * kMiB);
  auto wrong = EncryptedRbdImage::open(io(), name, std::nullopt, false, bytes_of("not the passphrase"));
  ASSERT_FALSE(wrong);
  EXPECT_TRUE(wrong.error().is(Errc::bad_key)) << wrong.error().message();
  EXPECT_NE(wrong.error().message().find(name), std::string::npos) << wrong.error().message();

  auto missing = EncryptedRbdImage::open(io(), "no-such-image", std::nullopt, false, bytes_of(kPassphrase));
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(Errc::not_found)) << missing.error().message();
  EXPECT_EQ(missing.error().message(), "image rbd:rbd/no-such-image does not exist");

  auto no_snap = EncryptedRbdImage::open(io(), name, "nosnap", false, bytes_of(kPassphrase));
  ASSERT_FALSE(no_snap);
  EXPECT_TRUE(no_snap.error().is(Errc::not_found)) << no_snap.error().message();

  const std::string plain = fresh_name("plain");
  ASSERT_TRUE(create_raw(plain, 4 * kMiB));
  auto not_luks = EncryptedRbdImage::open(io(), plain, std::nullopt, false, bytes_of(kPassphrase));
  ASSERT_FALSE(not_luks);
  EXPECT_TRUE(not_luks.error().is(Errc::bad_header)) << not_luks.error().message();
}

// ---- Snapshots, clones, resize, metadata ----

TEST_F(EncryptedRbdImageTest, SnapshotsOpenReadOnlyWithTheirOldData) {
  const std::string name = create_luks_image(4 * kMiB);
  auto image = open(name);
  ASSERT_TRUE(image);
  const auto before = random_bytes(10000, 10);
  const auto after = random_bytes(10000, 11);
  ASSERT_EQ(image->write(777, before), 10000);
  ASSERT_EQ(image->flush(), 0);
  {
    auto raw = open_rbd_image(connection_, RbdImageSpec{kPool, "", name, std::nullopt}, OpenMode::read_write);
    ASSERT_TRUE(raw);
    ASSERT_EQ((*raw)->image().snap_create("s1"), 0);
  }
  ASSERT_EQ(image->write(777, after), 10000);

  auto snap = open(name, "s1");
  ASSERT_TRUE(snap);
  EXPECT_TRUE(snap->read_only());
  EXPECT_EQ(snap->name(), "rbd:rbd/" + name + "@s1");
  EXPECT_EQ(*snap->size(), 4 * kMiB);
  std::vector<uint8_t> got(10000);
  ASSERT_EQ(snap->read(777, got), 10000);
  EXPECT_EQ(got, before);
  EXPECT_EQ(snap->write(777, after), -EROFS);
  EXPECT_EQ(snap->write_zeroes(0, 4096), -EROFS);
  EXPECT_EQ(snap->discard(0, 1), -EROFS);
  EXPECT_FALSE(snap->resize(8 * kMiB));
  EXPECT_FALSE(snap->set_metadata("k", "v"));
  ASSERT_EQ(image->read(777, got), 10000);
  EXPECT_EQ(got, after);

  auto read_only_head = open(name, std::nullopt, true);
  ASSERT_TRUE(read_only_head);
  EXPECT_EQ(read_only_head->write(0, got), -EROFS);
}

TEST_F(EncryptedRbdImageTest, CloneSharesTheParentsKeyAndData) {
  const uint64_t size = 8 * kMiB;
  const std::string parent_name = create_luks_image(size);
  std::vector<uint8_t> model(size, 0);
  {
    auto parent = open(parent_name);
    ASSERT_TRUE(parent);
    write_and_model(*parent, model, 0, size, 12);
    ASSERT_EQ(parent->flush(), 0);
    auto raw = open_rbd_image(connection_, RbdImageSpec{kPool, "", parent_name, std::nullopt}, OpenMode::read_write);
    ASSERT_TRUE(raw);
    ASSERT_EQ((*raw)->image().snap_create("base"), 0);
    ASSERT_EQ((*raw)->image().snap_protect("base"), 0);
  }
  const std::string child_name = fresh_name("clone");
  int order = 0;
  ASSERT_EQ(rbd_clone(io(), parent_name.c_str(), "base", io(), child_name.c_str(), RBD_FEATURE_LAYERING, &order), 0);

  auto child = open(child_name);
  ASSERT_TRUE(child) << "the clone opens with the parent's passphrase";
  expect_contents(*child, model);

  // Writes to the clone, partial sectors included, stay in the clone.
  const auto parent_model = model;
  write_and_model(*child, model, 4 * kMiB - 100, 300, 13);
  write_and_model(*child, model, 12345, 3, 14);
  ASSERT_EQ(child->write_zeroes(6 * kMiB + 10, kMiB), static_cast<ssize_t>(kMiB));
  std::fill_n(model.begin() + 6 * kMiB + 10, kMiB, 0);
  expect_contents(*child, model);
  child.reset();

  auto parent_snap = open(parent_name, "base");
  ASSERT_TRUE(parent_snap);
  expect_contents(*parent_snap, parent_model);
  auto reopened = open(child_name);
  ASSERT_TRUE(reopened);
  expect_contents(*reopened, model);
}

TEST_F(EncryptedRbdImageTest, ResizeCountsPlaintextBytes) {
  const std::string name = create_luks_image(4 * kMiB);
  auto image = open(name);
  ASSERT_TRUE(image);
  const auto data = random_bytes(4096, 15);
  ASSERT_EQ(image->write(4 * kMiB - 4096, data), 4096);

  ASSERT_TRUE(image->resize(12 * kMiB));
  EXPECT_EQ(*image->size(), 12 * kMiB);
  auto raw = open_rbd_image(connection_, RbdImageSpec{kPool, "", name, std::nullopt}, OpenMode::read_only);
  ASSERT_TRUE(raw);
  EXPECT_EQ(*(*raw)->size(), 16 * kMiB + 12 * kMiB) << "the RBD image is data offset + plaintext size";
  std::vector<uint8_t> got(4096, 0xee);
  ASSERT_EQ(image->read(12 * kMiB - 4096, got), 4096);
  EXPECT_EQ(got, std::vector<uint8_t>(4096, 0)) << "the new space reads as zeros";
  ASSERT_EQ(image->write(12 * kMiB - 10, std::span(data).first(10)), 10);

  ASSERT_TRUE(image->resize(2 * kMiB));
  EXPECT_EQ(*image->size(), 2 * kMiB);
  EXPECT_EQ(image->read(4 * kMiB - 4096, got), -EINVAL);
  ASSERT_TRUE(image->resize(4 * kMiB));
  ASSERT_EQ(image->read(4 * kMiB - 4096, got), 4096);
  EXPECT_EQ(got, std::vector<uint8_t>(4096, 0)) << "data cut off by a shrink does not come back";

  auto odd = image->resize(4 * kMiB + 1);
  ASSERT_FALSE(odd);
  EXPECT_TRUE(odd.error().is(Errc::usage)) << odd.error().message();
}

TEST_F(EncryptedRbdImageTest, MetadataSetGetRemove) {
  auto image = open(create_luks_image(4 * kMiB));
  ASSERT_TRUE(image);
  EXPECT_FALSE(image->get_metadata("rbd-luks.k")->has_value());
  ASSERT_TRUE(image->set_metadata("rbd-luks.k", "v1"));
  EXPECT_EQ(image->get_metadata("rbd-luks.k")->value_or(""), "v1");
  ASSERT_TRUE(image->remove_metadata("rbd-luks.k"));
  EXPECT_FALSE(image->get_metadata("rbd-luks.k")->has_value());
}

TEST_F(EncryptedRbdImageTest, OpensImagesInANamespace) {
  const std::string name_space = "luks-ns-" + std::to_string(getpid());
  const std::string name = "in-namespace";
  ASSERT_EQ(rbd_namespace_create(io(), name_space.c_str()), 0);
  struct Cleanup {
    std::shared_ptr<RbdConnection> connection;
    rados_ioctx_t pool;
    const std::string& name_space;
    const std::string& name;
    ~Cleanup() {
      auto inside = connection->open_pool(kPool, name_space);
      if (inside) rbd_remove(inside->get(), name.c_str());
      rbd_namespace_remove(pool, name_space.c_str());
    }
  } cleanup{connection_, io(), name_space, name};
  {
    auto raw = create_rbd_image(connection_, RbdImageSpec{kPool, name_space, name, std::nullopt}, 20 * kMiB);
    ASSERT_TRUE(raw) << raw.error().message();
    std::vector<uint8_t> key(64, 7);
    FormatOptions options;
    options.kdf = KdfRequest{.type = KdfType::argon2id, .force_iterations = 4, .max_memory_kib = 32, .parallel = 1};
    ASSERT_TRUE(format_luks(**raw, options, key, bytes_of(kPassphrase)));
  }
  auto ns_io = connection_->open_pool(kPool, name_space);
  ASSERT_TRUE(ns_io);
  {
    auto image = EncryptedRbdImage::open(ns_io->get(), name, std::nullopt, false, bytes_of(kPassphrase));
    ASSERT_TRUE(image) << image.error().message();
    ns_io->reset();  // the image keeps its own I/O context
    EXPECT_EQ((*image)->name(), "rbd:rbd/" + name_space + "/" + name);
    EXPECT_EQ(*(*image)->size(), 4 * kMiB);
    const auto data = random_bytes(5000, 16);
    ASSERT_EQ((*image)->write(3, data), 5000);
    std::vector<uint8_t> got(5000);
    ASSERT_EQ((*image)->read(3, got), 5000);
    EXPECT_EQ(got, data);
  }
  auto outside = EncryptedRbdImage::open(io(), name, std::nullopt, false, bytes_of(kPassphrase));
  ASSERT_FALSE(outside);
  EXPECT_TRUE(outside.error().is(Errc::not_found));
}

// ---- Interoperability with librbd's native encryption ----

class NativeInteropTest : public EncryptedRbdImageTest, public ::testing::WithParamInterface<int> {
 protected:
  // Loads native encryption on an open librbd image.
  static int native_load(rbd_image_t image, int version) {
    if (version == 1) {
      rbd_encryption_luks1_format_options_t options{RBD_ENCRYPTION_ALGORITHM_AES256, kPassphrase.data(),
                                                    kPassphrase.size()};
      return rbd_encryption_load(image, RBD_ENCRYPTION_FORMAT_LUKS1, &options, sizeof options);
    }
    rbd_encryption_luks2_format_options_t options{RBD_ENCRYPTION_ALGORITHM_AES256, kPassphrase.data(),
                                                  kPassphrase.size()};
    return rbd_encryption_load(image, RBD_ENCRYPTION_FORMAT_LUKS2, &options, sizeof options);
  }

  // The writes both directions make: unaligned, at both ends, across an object boundary.
  static std::vector<std::pair<uint64_t, std::vector<uint8_t>>> writes(uint64_t size) {
    return {{0, random_bytes(4096, 20)},
            {5000, random_bytes(3000, 21)},
            {4 * kMiB - 1000, random_bytes(70000, 22)},
            {size - 513, random_bytes(513, 23)}};
  }
};

TEST_P(NativeInteropTest, WhatNativeEncryptionWroteReadsBackThroughUs) {
  const int version = GetParam();
  const uint64_t raw_size = 32 * kMiB;
  const std::string name = fresh_name("native");
  ASSERT_TRUE(create_raw(name, raw_size));
  uint64_t size = 0;
  {
    rbd_image_t image = nullptr;
    ASSERT_EQ(rbd_open(io(), name.c_str(), &image, nullptr), 0);
    if (version == 1) {
      rbd_encryption_luks1_format_options_t options{RBD_ENCRYPTION_ALGORITHM_AES256, kPassphrase.data(),
                                                    kPassphrase.size()};
      ASSERT_EQ(rbd_encryption_format(image, RBD_ENCRYPTION_FORMAT_LUKS1, &options, sizeof options), 0);
    } else {
      rbd_encryption_luks2_format_options_t options{RBD_ENCRYPTION_ALGORITHM_AES256, kPassphrase.data(),
                                                    kPassphrase.size()};
      ASSERT_EQ(rbd_encryption_format(image, RBD_ENCRYPTION_FORMAT_LUKS2, &options, sizeof options), 0);
    }
    rbd_close(image);
    ASSERT_EQ(rbd_open(io(), name.c_str(), &image, nullptr), 0);
    ASSERT_EQ(native_load(image, version), 0);
    ASSERT_EQ(rbd_get_size(image, &size), 0);
    for (const auto& [offset, data] : writes(size)) {
      ASSERT_EQ(rbd_write(image, offset, data.size(), reinterpret_cast<const char*>(data.data())),
                static_cast<ssize_t>(data.size()));
    }
    ASSERT_EQ(rbd_flush(image), 0);
    rbd_close(image);
  }
  auto ours = open(name);
  ASSERT_TRUE(ours);
  EXPECT_EQ(*ours->size(), size) << "the same plaintext size as native";
  EXPECT_EQ(size, raw_size - default_data_offset(version));
  for (const auto& [offset, data] : writes(size)) {
    std::vector<uint8_t> got(data.size());
    ASSERT_EQ(ours->read(offset, got), static_cast<ssize_t>(got.size()));
    EXPECT_EQ(got, data) << "at " << offset;
  }
  std::vector<uint8_t> hole(1000, 0xee);
  ASSERT_EQ(ours->read(10 * kMiB, hole), 1000);
  EXPECT_EQ(hole, std::vector<uint8_t>(1000, 0));
}

TEST_P(NativeInteropTest, WhatWeWroteReadsBackThroughNativeEncryption) {
  const int version = GetParam();
  const uint64_t size = 16 * kMiB;
  const std::string name = create_luks_image(size, LuksFormat{version, version == 1 ? 512u : 4096u});
  {
    auto ours = open(name);
    ASSERT_TRUE(ours);
    for (const auto& [offset, data] : writes(size)) {
      ASSERT_EQ(ours->write(offset, data), static_cast<ssize_t>(data.size()));
    }
    ASSERT_EQ(ours->write_zeroes(5000 + 100, 50), 50);
    ASSERT_EQ(ours->flush(), 0);
  }
  rbd_image_t image = nullptr;
  ASSERT_EQ(rbd_open(io(), name.c_str(), &image, nullptr), 0);
  ASSERT_EQ(native_load(image, version), 0);
  uint64_t native_size = 0;
  ASSERT_EQ(rbd_get_size(image, &native_size), 0);
  EXPECT_EQ(native_size, size);
  for (const auto& [offset, data] : writes(size)) {
    std::vector<uint8_t> got(data.size());
    ASSERT_EQ(rbd_read(image, offset, got.size(), reinterpret_cast<char*>(got.data())),
              static_cast<ssize_t>(got.size()));
    // The zeroed bytes, then everything else.
    if (offset == 5000) {
      EXPECT_EQ(std::count(got.begin() + 100, got.begin() + 150, 0), 50);
    }
    const auto unchanged = [&](size_t from, size_t to) {
      return std::equal(got.begin() + from, got.begin() + to, data.begin() + from);
    };
    EXPECT_TRUE(offset == 5000 ? unchanged(0, 100) && unchanged(150, data.size()) : unchanged(0, data.size()))
        << "at " << offset;
  }
  rbd_close(image);
}

INSTANTIATE_TEST_SUITE_P(Luks, NativeInteropTest, ::testing::Values(1, 2),
                         [](const auto& param_info) { return "luks" + std::to_string(param_info.param); });

// ---- WorkerPool ----

TEST(WorkerPool, RunsTasksOnItsOwnThreads) {
  WorkerPool pool(2);
  EXPECT_EQ(pool.size(), 2u);
  std::mutex mutex;
  std::condition_variable cv;
  int done = 0;
  std::vector<std::thread::id> threads;
  for (int i = 0; i < 100; ++i) {
    pool.post([&] {
      const std::lock_guard lock(mutex);
      threads.push_back(std::this_thread::get_id());
      if (++done == 100) cv.notify_one();
    });
  }
  std::unique_lock lock(mutex);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return done == 100; }));
  EXPECT_EQ(std::count(threads.begin(), threads.end(), std::this_thread::get_id()), 0);
}

TEST(WorkerPool, DestructionRunsWhatIsQueued) {
  std::atomic<int> ran{0};
  {
    WorkerPool pool(1);
    pool.post([] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
    for (int i = 0; i < 10; ++i) pool.post([&] { ++ran; });
  }
  EXPECT_EQ(ran.load(), 10);
  EXPECT_GE(WorkerPool::default_threads(), 1u);
  EXPECT_LE(WorkerPool::default_threads(), 4u);
}

}  // namespace
}  // namespace rbdluks
