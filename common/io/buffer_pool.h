// BufferPool: a bounded set of reusable, page-aligned bounce buffers for the synchronous data path
// over files (EncryptedImage). (The RBD dispatch layer needs none: it encrypts into buffers librbd
// takes over, see plugin/rbd/encrypted_rbd_image.h.)
//
// Writes encrypt into a bounce buffer so the caller's data is never modified, and partial-sector
// requests assemble whole sectors in one. Taking them from a fixed pool instead of allocating per
// request bounds memory (count x size, whatever the queue depth) and avoids page-faulting fresh
// megabytes on every request. Buffers are allocated on first use, so an idle pool costs nothing.
// Buffers of a huge page or more are mapped on huge-page boundaries and offered to transparent huge
// pages (MADV_HUGEPAGE; most distributions enable THP only on request): a 4 MiB bounce buffer then
// takes two TLB entries instead of 1024 while the cipher writes it.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace rbdluks {

class BufferPool {
 private:
  // How a buffer was allocated: mapped_bytes != 0 for an mmap'ed one, else aligned operator new.
  struct AlignedFree {
    size_t mapped_bytes = 0;
    void operator()(uint8_t* p) const;
  };
  using Buffer = std::unique_ptr<uint8_t, AlignedFree>;

 public:
  static constexpr size_t kAlignment = 4096;
  static constexpr size_t kHugePageBytes = size_t{2} << 20;  // x86-64's and arm64's (4 KiB granule) PMD size

  // A buffer on loan; returned to the pool when destroyed. Must not outlive its pool.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    std::span<uint8_t> span() const { return {buffer_.get(), size_}; }

   private:
    friend class BufferPool;
    Lease(BufferPool* pool, Buffer buffer, size_t size) : pool_(pool), buffer_(std::move(buffer)), size_(size) {}

    BufferPool* pool_;
    Buffer buffer_;
    size_t size_;
  };

  // buffer_bytes is rounded up to kAlignment; count must be at least 1.
  BufferPool(size_t buffer_bytes, size_t count);
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // The kernel's transparent huge page mode, the bracketed word of "always [madvise] never", which
  // decides whether large buffers get huge pages; "unknown" where the kernel does not say.
  static std::string transparent_huge_pages_mode();

  size_t buffer_bytes() const { return buffer_bytes_; }
  size_t count() const { return count_; }

  // Blocks while all buffers are on loan.
  Lease acquire();

 private:
  // Caller holds mutex_ and has checked that a buffer is free or may still be allocated.
  Lease take();
  Buffer allocate() const;
  void give_back(Buffer buffer);

  const size_t buffer_bytes_;
  const size_t count_;
  std::mutex mutex_;
  std::condition_variable returned_;
  std::vector<Buffer> free_;
  size_t allocated_ = 0;
};

}  // namespace rbdluks
