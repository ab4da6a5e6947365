// SecureBuffer: an owner of secure arena memory.
#include "secure_buffer.h"

#include <cstring>
#include <utility>

#include "secure_arena.h"

namespace rbdluks {

void secure_zero(void* data, size_t size) {
  if (size != 0) explicit_bzero(data, size);
}

SecureBuffer::SecureBuffer(size_t size) : size_(size) {
  if (size != 0) data_ = static_cast<uint8_t*>(secure_allocate(size));
}

SecureBuffer::SecureBuffer(const uint8_t* data, size_t size) : SecureBuffer(size) {
  if (size != 0) std::memcpy(data_, data, size);
}

SecureBuffer::~SecureBuffer() { release(); }

SecureBuffer::SecureBuffer(SecureBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecureBuffer& SecureBuffer::operator=(SecureBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void SecureBuffer::release() {
  secure_free(data_);
  data_ = nullptr;
  size_ = 0;
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
