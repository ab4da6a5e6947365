// IoLoad: one submitting thread refilling the queue from completions, and the two kinds of device
// it drives: librbd images (plain or natively encrypted) and rbd-luks images.
#include "io_load.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>
#include <vector>

#include "random.h"

namespace rbdluks::cli {
namespace {

class LibrbdDevice final : public AsyncBlockDevice {
 public:
  LibrbdDevice(rbd_image_t image, uint64_t size) : image_(image), size_(size) {}
  uint64_t size() const override { return size_; }

  void submit(bool write, uint64_t offset, std::span<uint8_t> buffer, IoSlot* slot) override {
    rbd_completion_t c = nullptr;
    int r = rbd_aio_create_completion(slot, &LibrbdDevice::done, &c);
    if (r == 0) {
      auto* data = reinterpret_cast<char*>(buffer.data());
      r = write ? rbd_aio_write(image_, offset, buffer.size(), data, c)
                : rbd_aio_read(image_, offset, buffer.size(), data, c);
      if (r < 0) rbd_aio_release(c);
    }
    if (r < 0) slot->complete(r);
  }
  int flush() override { return rbd_flush(image_); }

 private:
  static void done(rbd_completion_t c, void* arg) {
    const ssize_t r = rbd_aio_get_return_value(c);
    rbd_aio_release(c);
    static_cast<IoSlot*>(arg)->complete(r);
  }

  rbd_image_t image_;
  uint64_t size_;
};

class RbdLuksDevice final : public AsyncBlockDevice {
 public:
  RbdLuksDevice(EncryptedRbdImage& image, uint64_t size) : image_(image), size_(size) {}
  uint64_t size() const override { return size_; }

  void submit(bool write, uint64_t offset, std::span<uint8_t> buffer, IoSlot* slot) override {
    auto done = [slot](ssize_t r) { slot->complete(r); };
    if (write)
      image_.aio_write(offset, buffer, done);
    else
      image_.aio_read(offset, buffer, done);
  }
  int flush() override { return static_cast<int>(image_.flush()); }

 private:
  EncryptedRbdImage& image_;
  uint64_t size_;
};

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Completed slots travel from the data path's threads to the thread running the load, which
// resubmits them: one submitter, as in fio, for every device alike.
class Load {
 public:
  Load(AsyncBlockDevice& device, const LoadSpec& spec, const std::atomic<bool>& stop)
      : device_(device), spec_(spec), stop_(stop), rng_(spec.seed | 1) {}

  Result<LoadResult> run() {
    const size_t block = spec_.block_size;
    const uint64_t blocks = (device_.size() - std::min<uint64_t>(device_.size(), spec_.misalign)) / block;
    if (blocks == 0) return Error(Errc::usage, "the block size is larger than the benchmark image");
    blocks_ = blocks;
    // One page-aligned arena for all slots, as an application with O_DIRECT buffers would have.
    Arena arena(static_cast<uint8_t*>(std::aligned_alloc(4096, block * spec_.queue_depth)));
    if (!arena) return Error(Errc::failure, "out of memory for benchmark buffers");
    const std::span<uint8_t> all(arena.get(), block * spec_.queue_depth);
    // Touched before the clock starts, so no path pays for page faults in its time. Writes carry
    // random bytes; reads overwrite whatever is there, so zeros do (and cost far less to make).
    if (spec_.write) {
      RL_TRY(fill_random(all));
    } else {
      std::memset(all.data(), 0, all.size());
    }
    slots_.reserve(spec_.queue_depth);
    for (uint32_t i = 0; i < spec_.queue_depth; ++i) slots_.push_back(Slot{this, all.subspan(i * block, block)});

    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto deadline =
        start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(spec_.seconds));
    const double cpu_start = cpu_seconds();
    size_t in_flight = 0;
    for (auto& slot : slots_) {
      if (!submit_next(&slot)) break;
      ++in_flight;
    }
    LoadResult result;
    std::vector<Slot*> done;
    while (in_flight > 0) {
      bool failed = false;
      {
        std::unique_lock lock(mutex_);
        completed_cv_.wait(lock, [&] { return !completed_.empty(); });
        done.swap(completed_);
        failed = error_ != 0;
      }
      const bool more = !failed && !stop_.load() && (spec_.fill_once || clock::now() < deadline);
      for (Slot* slot : done) {
        --in_flight;
        ++result.requests;
        result.bytes += slot->buffer.size();
        if (more && submit_next(slot)) ++in_flight;
      }
      done.clear();
    }
    result.seconds = std::chrono::duration<double>(clock::now() - start).count();
    result.cpu_seconds = cpu_seconds() - cpu_start;
    if (error_ != 0) {
      return Error(Errc::failure,
                   "benchmark I/O failed: " + std::error_code(error_, std::generic_category()).message());
    }
    return result;
  }

 private:
  struct Slot final : IoSlot {
    Slot(Load* l, std::span<uint8_t> b) : load(l), buffer(b) {}
    void complete(ssize_t r) override { load->completed(this, r); }
    Load* load;
    std::span<uint8_t> buffer;
  };
  struct FreeArena {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  using Arena = std::unique_ptr<uint8_t, FreeArena>;

  bool submit_next(Slot* slot) {
    uint64_t block_index;
    if (spec_.fill_once) {
      if (next_block_ >= blocks_) return false;
      block_index = next_block_++;
    } else {
      // xorshift64*: cheap, and seeded, so each device gets the same offsets.
      rng_ ^= rng_ >> 12;
      rng_ ^= rng_ << 25;
      rng_ ^= rng_ >> 27;
      block_index = (rng_ * 0x2545F4914F6CDD1DULL) % blocks_;
    }
    device_.submit(spec_.write, block_index * spec_.block_size + spec_.misalign, slot->buffer, slot);
    return true;
  }

  void completed(Slot* slot, ssize_t r) {
    std::lock_guard lock(mutex_);
    if (r < 0 && error_ == 0) error_ = static_cast<int>(-r);
    if (r >= 0 && static_cast<size_t>(r) != slot->buffer.size() && !spec_.write && error_ == 0) error_ = EIO;
    completed_.push_back(slot);
    completed_cv_.notify_one();
  }

  AsyncBlockDevice& device_;
  const LoadSpec& spec_;
  const std::atomic<bool>& stop_;
  uint64_t rng_;
  uint64_t blocks_ = 0;
  uint64_t next_block_ = 0;
  std::vector<Slot> slots_;

  std::mutex mutex_;
  std::condition_variable completed_cv_;
  std::vector<Slot*> completed_;
  int error_ = 0;  // the first failure's errno, under mutex_
};

}  // namespace

std::unique_ptr<AsyncBlockDevice> librbd_device(rbd_image_t image, uint64_t size) {
  return std::make_unique<LibrbdDevice>(image, size);
}

std::unique_ptr<AsyncBlockDevice> rbd_luks_device(EncryptedRbdImage& image, uint64_t size) {
  return std::make_unique<RbdLuksDevice>(image, size);
}

Result<LoadResult> run_load(AsyncBlockDevice& device, const LoadSpec& spec, const std::atomic<bool>& stop) {
  return Load(device, spec, stop).run();
}

}  // namespace rbdluks::cli
