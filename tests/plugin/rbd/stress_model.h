// The stress model of EncryptedRbdImage: threads issue random overlapping, mostly unaligned reads,
// writes, write_zeroes and discards (synchronous and asynchronous, mixed) against one image,
// checked against an in-memory model. Used by stress_test.cc, with all threads in one process or
// split between the test and rbd_test_client (two clients of the image).
//
// The checker is sound without knowing the order of concurrent requests because every byte has one
// owner thread, and only its owner changes it: in the "fine" region ownership alternates every
// 1536 bytes, so every sector is shared by 3 or 4 threads and each write is a read-modify-write of
// sectors that others modify at the same time (half of those writes are 512-byte blocks on 512-byte
// boundaries, as a guest with 512-byte logical blocks writes); in the "coarse" region each thread
// owns a 100000-byte block whose ends share a sector with its neighbours, so large writes mix
// whole-sector writes (shared range lock) with edge read-modify-writes (exclusive). A read may span
// anyone's bytes but checks only the reader's own, which no one else may have changed; at the end
// every byte must equal its owner's last write. A lost update (two read-modify-writes of one sector
// racing) shows up as an owner's byte reverting. The fine region straddles a RADOS object boundary.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "encrypted_rbd_fixture.h"
#include "encrypted_rbd_image.h"

namespace rbdluks::testing {

inline constexpr int kStressThreads = 8;
inline constexpr uint64_t kFineBegin = 4 * kMiB - 64 * 1024;  // across the first object boundary
inline constexpr uint64_t kFineBytes = 128 * 1024;
inline constexpr uint64_t kStripe = 1536;
inline constexpr uint64_t kCoarseBegin = 6 * kMiB + 1234;
inline constexpr uint64_t kBlock = 100000;
inline constexpr uint64_t kStressImageBytes = 8 * kMiB;

// Who owns plaintext byte `at`, or -1 outside both regions.
inline int owner(uint64_t at) {
  if (at >= kFineBegin && at < kFineBegin + kFineBytes) {
    return static_cast<int>((at - kFineBegin) / kStripe % kStressThreads);
  }
  if (at >= kCoarseBegin && at < kCoarseBegin + kStressThreads * kBlock) {
    return static_cast<int>((at - kCoarseBegin) / kBlock);
  }
  return -1;
}

struct Range {
  uint64_t offset;
  uint64_t length;
};

inline constexpr Range kStressRegions[] = {{kFineBegin, kFineBytes}, {kCoarseBegin, kStressThreads* kBlock}};

class Stress {
 public:
  explicit Stress(EncryptedRbdImage& image) : image_(image), model_(kStressImageBytes, 0) {}

  void run(int thread, std::chrono::steady_clock::time_point deadline) {
    std::mt19937_64 rng(1000 + thread);
    while (std::chrono::steady_clock::now() < deadline && failures_ == 0) {
      if (rng() % 3 == 0) {
        async_batch(thread, rng);
      } else {
        sync_op(thread, rng);
      }
    }
  }

  // The model of this process's threads: the last write of each of their bytes.
  const std::vector<uint8_t>& model() const { return model_; }
  // Takes the bytes of threads [first, last) from another process's model.
  void merge(const std::vector<uint8_t>& other, int first, int last) {
    for (const Range& region : kStressRegions) {
      for (uint64_t at = region.offset; at < region.offset + region.length; ++at) {
        if (owner(at) >= first && owner(at) < last) model_[at] = other[at];
      }
    }
  }

  // Empty when every byte of both regions equals its owner's last write, else the first that does not.
  std::string check_final() {
    for (const Range& region : kStressRegions) {
      std::vector<uint8_t> got(region.length);
      const ssize_t r = image_.read(region.offset, got);
      if (r != static_cast<ssize_t>(got.size())) return "final read returned " + std::to_string(r);
      for (uint64_t i = 0; i < got.size(); ++i) {
        if (got[i] != model_[region.offset + i]) {
          std::ostringstream message;
          message << "byte " << region.offset + i << " (owner " << owner(region.offset + i) << ") is " << int{got[i]}
                  << ", its owner last wrote " << int{model_[region.offset + i]};
          return message.str();
        }
      }
    }
    return "";
  }

  uint64_t operations() const { return operations_; }
  int failures() const { return failures_; }
  std::string first_failure() {
    const std::lock_guard lock(failure_mutex_);
    return first_failure_;
  }

 private:
  enum class Kind { write, zero, discard, read };

  // A random piece of stripe `k` (counted among this thread's stripes) of the fine region: half of
  // the time one 512-byte block of it.
  static Range in_stripe(int thread, uint64_t k, std::mt19937_64& rng) {
    const uint64_t stripe = kFineBegin + (k * kStressThreads + static_cast<uint64_t>(thread)) * kStripe;
    if (rng() % 2 == 0) return {stripe + rng() % (kStripe / 512) * 512, 512};
    const uint64_t from = rng() % kStripe;
    return {stripe + from, 1 + rng() % (kStripe - from)};
  }
  static uint64_t stripes_per_thread() { return kFineBytes / kStripe / kStressThreads; }

  // A random piece of this thread's block of the coarse region, sometimes sector-aligned.
  static Range in_block(int thread, std::mt19937_64& rng) {
    const uint64_t block = kCoarseBegin + static_cast<uint64_t>(thread) * kBlock;
    uint64_t from = block + rng() % kBlock;
    uint64_t to = from + 1 + rng() % (block + kBlock - from);
    if (rng() % 3 == 0) {
      const uint64_t aligned_from = (from + 4095) / 4096 * 4096;
      const uint64_t aligned_to = to / 4096 * 4096;
      if (aligned_from < aligned_to) {
        from = aligned_from;
        to = aligned_to;
      }
    }
    return {from, to - from};
  }

  // Any range, possibly covering other threads' bytes, for reads.
  static Range anywhere(std::mt19937_64& rng) {
    const bool fine = rng() % 2 == 0;
    const uint64_t begin = fine ? kFineBegin : kCoarseBegin;
    const uint64_t bytes = fine ? kFineBytes : kStressThreads * kBlock;
    const uint64_t from = begin + rng() % bytes;
    return {from, 1 + rng() % std::min<uint64_t>(begin + bytes - from, 256 * 1024)};
  }

  static Kind random_change(std::mt19937_64& rng) {
    const auto r = rng() % 10;
    return r < 8 ? Kind::write : r < 9 ? Kind::zero : Kind::discard;
  }

  void sync_op(int thread, std::mt19937_64& rng) {
    const auto r = rng() % 10;
    if (r < 4) {
      const Range range = anywhere(rng);
      std::vector<uint8_t> got(range.length);
      expect_result(image_.read(range.offset, got), range, "read");
      check_own(thread, range, got);
      return;
    }
    const Range range = r < 7 ? in_stripe(thread, rng() % stripes_per_thread(), rng) : in_block(thread, rng);
    const Kind kind = random_change(rng);
    std::vector<uint8_t> data(kind == Kind::write ? range.length : 0);
    for (auto& b : data) b = static_cast<uint8_t>(rng() | 1);  // never 0, so zeroing shows
    const ssize_t result = kind == Kind::write  ? image_.write(range.offset, data)
                           : kind == Kind::zero ? image_.write_zeroes(range.offset, range.length)
                                                : image_.discard(range.offset, range.length);
    expect_result(result, range, "change");
    apply(range, data);
  }

  // Up to four requests in flight on distinct stripes of this thread, so none of them can see
  // another's effect on this thread's bytes.
  void async_batch(int thread, std::mt19937_64& rng) {
    struct Op {
      Kind kind;
      Range range;
      std::vector<uint8_t> data;
      ssize_t result = 1;
    };
    std::vector<Op> ops;
    std::vector<uint64_t> stripes;
    while (stripes.size() < 4) {
      const uint64_t k = rng() % stripes_per_thread();
      if (std::find(stripes.begin(), stripes.end(), k) == stripes.end()) stripes.push_back(k);
    }
    for (uint64_t k : stripes) {
      const Kind kind = rng() % 3 == 0 ? Kind::read : random_change(rng);
      Op op{kind, in_stripe(thread, k, rng), {}};
      op.data.resize(op.range.length);
      for (auto& b : op.data) b = kind == Kind::read ? 0xee : static_cast<uint8_t>(rng() | 1);
      ops.push_back(std::move(op));
    }
    std::mutex mutex;
    std::condition_variable cv;
    size_t left = ops.size();
    for (Op& op : ops) {
      auto done = [&, result = &op.result](ssize_t r) {
        const std::lock_guard lock(mutex);
        *result = r;
        if (--left == 0) cv.notify_one();
      };
      switch (op.kind) {
        case Kind::read:
          image_.aio_read(op.range.offset, op.data, done);
          break;
        case Kind::write:
          image_.aio_write(op.range.offset, op.data, done);
          break;
        case Kind::zero:
          image_.aio_write_zeroes(op.range.offset, op.range.length, done);
          break;
        case Kind::discard:
          image_.aio_discard(op.range.offset, op.range.length, done);
          break;
      }
    }
    {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return left == 0; });
    }
    for (Op& op : ops) {
      expect_result(op.result, op.range, "async");
      if (op.kind == Kind::read) {
        check_own(thread, op.range, op.data);
      } else {
        apply(op.range, op.kind == Kind::write ? op.data : std::vector<uint8_t>{});
      }
    }
  }

  void apply(const Range& range, const std::vector<uint8_t>& data) {
    for (uint64_t i = 0; i < range.length; ++i) model_[range.offset + i] = data.empty() ? 0 : data[i];
    ++operations_;
  }

  void check_own(int thread, const Range& range, const std::vector<uint8_t>& got) {
    ++operations_;
    for (uint64_t i = 0; i < range.length; ++i) {
      const uint64_t at = range.offset + i;
      if (owner(at) == thread && got[i] != model_[at]) {
        std::ostringstream message;
        message << "thread " << thread << " read " << int{got[i]} << " at " << at << " where it last wrote "
                << int{model_[at]};
        fail(message.str());
        return;
      }
    }
  }

  void expect_result(ssize_t result, const Range& range, const char* what) {
    if (result == static_cast<ssize_t>(range.length)) return;
    std::ostringstream message;
    message << what << " of " << range.length << " bytes at " << range.offset << " returned " << result;
    fail(message.str());
  }

  void fail(const std::string& message) {
    const std::lock_guard lock(failure_mutex_);
    if (failures_++ == 0) first_failure_ = message;
  }

  EncryptedRbdImage& image_;
  std::vector<uint8_t> model_;  // each byte written only by its owner thread
  std::atomic<uint64_t> operations_{0};
  std::atomic<int> failures_{0};
  std::mutex failure_mutex_;
  std::string first_failure_;
};

// Runs threads [first, last) of the model on image for `seconds`.
inline void run_stress_threads(Stress& stress, int first, int last, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::vector<std::thread> threads;
  for (int t = first; t < last; ++t) threads.emplace_back([&, t] { stress.run(t, deadline); });
  for (auto& t : threads) t.join();
}

}  // namespace rbdluks::testing
