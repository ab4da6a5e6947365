// SecureBuffer: memory for keys and passphrases.
//
// The bytes come from the secure arena (secure_arena.h): locked (never swapped), excluded from core
// dumps, not inherited by forked children, and zeroed when freed; small buffers share pages.
// Move-only, so a secret is never copied by accident.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace rbdluks {

class SecureBuffer {
 public:
  SecureBuffer() = default;
  explicit SecureBuffer(size_t size);  // zero-filled
  SecureBuffer(const uint8_t* data, size_t size);
  static SecureBuffer copy_of(std::span<const uint8_t> bytes) { return {bytes.data(), bytes.size()}; }
  static SecureBuffer copy_of(std::string_view text) {
    return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
  }
  ~SecureBuffer();

  SecureBuffer(SecureBuffer&& other) noexcept;
  SecureBuffer& operator=(SecureBuffer&& other) noexcept;
  SecureBuffer(const SecureBuffer&) = delete;
  SecureBuffer& operator=(const SecureBuffer&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  uint8_t& operator[](size_t i) { return data_[i]; }
  uint8_t operator[](size_t i) const { return data_[i]; }
  std::span<uint8_t> span() { return {data_, size_}; }
  std::span<const uint8_t> span() const { return {data_, size_}; }

  // Constant-time comparison of contents.
  bool equals(std::span<const uint8_t> other) const;

  // Drops the last bytes (zeroing them); used when a passphrase read into a larger buffer is shorter.
  void shrink(size_t new_size);

 private:
  void release();

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Zeroes memory in a way the compiler may not optimise away.
void secure_zero(void* data, size_t size);

}  // namespace rbdluks
