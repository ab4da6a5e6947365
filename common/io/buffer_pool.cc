// BufferPool: free buffers on a stack (the most recently used one is the warmest in cache).
#include "buffer_pool.h"

#include <sys/mman.h>

#include <cassert>
#include <cstdint>
#include <fstream>
#include <new>
#include <utility>

#include "alignment.h"

namespace rbdluks {

void BufferPool::AlignedFree::operator()(uint8_t* p) const {
  if (mapped_bytes != 0) {
    munmap(p, mapped_bytes);
  } else {
    ::operator delete(p, std::align_val_t(kAlignment));
  }
}

BufferPool::Buffer BufferPool::allocate() const {
  if (buffer_bytes_ < kHugePageBytes) {
    return Buffer(static_cast<uint8_t*>(::operator new(buffer_bytes_, std::align_val_t(kAlignment))), AlignedFree{});
  }
  // Mapped with a huge page of slack, then trimmed to a huge-page-aligned run: mmap itself only
  // promises page alignment, and a misaligned buffer could not use a single huge page.
  const size_t bytes = round_up(buffer_bytes_, kHugePageBytes);
  void* mapped = mmap(nullptr, bytes + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw std::bad_alloc();
  auto* const start = static_cast<uint8_t*>(mapped);
  const uintptr_t address = reinterpret_cast<uintptr_t>(start);
  const size_t head = (kHugePageBytes - address % kHugePageBytes) % kHugePageBytes;
  if (head != 0) munmap(start, head);
  munmap(start + head + bytes, kHugePageBytes - head);  // head < kHugePageBytes: never empty
  // Advice only: without THP (or with it set to never) the buffer simply uses small pages.
  madvise(start + head, bytes, MADV_HUGEPAGE);
  return Buffer(start + head, AlignedFree{bytes});
}

std::string BufferPool::transparent_huge_pages_mode() {
  std::ifstream file("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(file, line);
  const auto open = line.find('['), close = line.find(']');
  return open != std::string::npos && close != std::string::npos && close > open
             ? line.substr(open + 1, close - open - 1)
             : "unknown";
}

BufferPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), buffer_(std::move(other.buffer_)), size_(other.size_) {}

BufferPool::Lease& BufferPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (pool_ != nullptr) pool_->give_back(std::move(buffer_));
    pool_ = std::exchange(other.pool_, nullptr);
    buffer_ = std::move(other.buffer_);
    size_ = other.size_;
  }
  return *this;
}

BufferPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->give_back(std::move(buffer_));
}

BufferPool::BufferPool(size_t buffer_bytes, size_t count)
    : buffer_bytes_(round_up(buffer_bytes, kAlignment)), count_(count) {
  assert(buffer_bytes_ > 0 && count_ > 0);
  free_.reserve(count_);
}

BufferPool::Lease BufferPool::acquire() {
  std::unique_lock lock(mutex_);
  returned_.wait(lock, [&] { return !free_.empty() || allocated_ < count_; });
  return take();
}

BufferPool::Lease BufferPool::take() {
  if (free_.empty()) {
    Buffer buffer = allocate();
    ++allocated_;
    return Lease(this, std::move(buffer), buffer_bytes_);
  }
  Buffer buffer = std::move(free_.back());
  free_.pop_back();
  return Lease(this, std::move(buffer), buffer_bytes_);
}

void BufferPool::give_back(Buffer buffer) {
  std::unique_lock lock(mutex_);
  free_.push_back(std::move(buffer));
  lock.unlock();
  returned_.notify_one();
}

}  // namespace rbdluks
