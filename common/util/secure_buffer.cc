// SecureBuffer: mmap'd, mlock'd, MADV_DONTDUMP memory that is zeroed before munmap.
#include "secure_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <utility>

#include "alignment.h"

namespace rbdluks {
namespace {

size_t page_round(size_t size) {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return round_up(size, page);
}

}  // namespace

void secure_zero(void* data, size_t size) {
  if (size != 0) explicit_bzero(data, size);
}

SecureBuffer::SecureBuffer(size_t size) : size_(size) {
  if (size == 0) return;
  mapped_ = page_round(size);
  void* p = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  // Locking can fail under RLIMIT_MEMLOCK; the secret is still zeroed on free and kept out of core
  // dumps, so we carry on rather than refuse to work.
  (void)mlock(p, mapped_);
  (void)madvise(p, mapped_, MADV_DONTDUMP);
  data_ = static_cast<uint8_t*>(p);  // anonymous mappings are zero-filled
}

SecureBuffer::SecureBuffer(const uint8_t* data, size_t size) : SecureBuffer(size) {
  if (size != 0) std::memcpy(data_, data, size);
}

SecureBuffer::~SecureBuffer() { release(); }

SecureBuffer::SecureBuffer(SecureBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)) {}

SecureBuffer& SecureBuffer::operator=(SecureBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, 0);
  }
  return *this;
}

void SecureBuffer::release() {
  if (data_ == nullptr) return;
  secure_zero(data_, mapped_);
  munlock(data_, mapped_);
  munmap(data_, mapped_);
  data_ = nullptr;
  size_ = mapped_ = 0;
}

bool SecureBuffer::equals(std::span<const uint8_t> other) const {
  if (other.size() != size_) return false;
  uint8_t diff = 0;
  for (size_t i = 0; i < size_; ++i) diff |= data_[i] ^ other[i];
  return diff == 0;
}

void SecureBuffer::shrink(size_t new_size) {
  if (new_size >= size_) return;
  secure_zero(data_ + new_size, size_ - new_size);
  size_ = new_size;
}

}  // namespace rbdluks
