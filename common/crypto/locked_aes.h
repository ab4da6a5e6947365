// LockedAes: Crypto++'s AES with its key schedule in locked memory, for the portable XTS backend.
//
// Crypto++ keeps a Rijndael key schedule (m_key) and, on x86, a scratch block that its SSE2 code
// copies the round keys into (m_aliasBlock, never wiped: its wipe mark is 0) in SecBlocks it
// allocates from the ordinary heap, with no way to pass another allocator. Both are protected
// members, and a SecBlock subclass may set a block's pointer and size. So once Crypto++ has keyed
// the object, each block is copied into a SecureBuffer, Crypto++'s heap block is freed (and wiped by
// its allocator where it held anything), and the member is pointed at the SecureBuffer; before
// Crypto++'s destructor runs, the member is pointed away again, so Crypto++ never frees memory it
// did not allocate. Crypto++ neither resizes nor reallocates either block after keying.
#pragma once

#include <crypto++/aes.h>
#include <crypto++/secblock.h>

#include <cstddef>
#include <cstdint>

#include "secure_buffer.h"

namespace rbdluks {

// A SecBlock over memory it does not own: it never frees it.
template <typename T, typename A>
class BorrowedBlock final : public CryptoPP::SecBlock<T, A> {
 public:
  BorrowedBlock(T* data, size_t count) : CryptoPP::SecBlock<T, A>(0) {
    this->m_ptr = data;
    this->m_size = this->m_mark = count;
  }
  ~BorrowedBlock() {
    this->m_ptr = nullptr;
    this->m_size = this->m_mark = 0;
  }
  BorrowedBlock(const BorrowedBlock&) = delete;
  BorrowedBlock& operator=(const BorrowedBlock&) = delete;
};

// Aes is CryptoPP::AES::Encryption or CryptoPP::AES::Decryption.
template <typename Aes>
class LockedAes final : public Aes {
 public:
  LockedAes(const uint8_t* key, size_t size) : Aes(key, size) {
    schedule_ = move_to_locked(this->m_key);
    scratch_ = move_to_locked(this->m_aliasBlock);
  }
  ~LockedAes() override {
    this->m_key.swap(key_after_);
    this->m_aliasBlock.swap(scratch_after_);
  }
  LockedAes(const LockedAes&) = delete;
  LockedAes& operator=(const LockedAes&) = delete;

 private:
  template <typename T, typename A>
  static SecureBuffer move_to_locked(CryptoPP::SecBlock<T, A>& block) {
    if (block.empty()) return {};
    SecureBuffer locked(reinterpret_cast<const uint8_t*>(block.data()), block.SizeInBytes());
    CryptoPP::SecBlock<T, A> heap;  // takes Crypto++'s block and frees it when this returns
    heap.swap(block);
    BorrowedBlock<T, A> borrowed(reinterpret_cast<T*>(locked.data()), heap.size());
    block.swap(borrowed);
    return locked;
  }

  SecureBuffer schedule_;
  SecureBuffer scratch_;
  // Empty until the destructor swaps them with the members, so that Crypto++'s destructor finds
  // nothing to free and these let the SecureBuffers' memory go.
  BorrowedBlock<CryptoPP::word32, CryptoPP::AllocatorWithCleanup<CryptoPP::word32, true>> key_after_{nullptr, 0};
  BorrowedBlock<CryptoPP::byte, CryptoPP::AllocatorWithCleanup<CryptoPP::byte>> scratch_after_{nullptr, 0};
};

}  // namespace rbdluks
