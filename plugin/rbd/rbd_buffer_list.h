// RbdBufferList: a librbd buffer list (ceph::bufferlist) behind a handle that needs no Ceph C++
// header. The dispatch layer reads ciphertext into one and writes ciphertext from one, so librbd
// never copies it; this seam keeps librbd.hpp and buffer.h inside two .cc files, because clang
// cannot compile Ceph 16's buffer.h as C++20 (an ambiguous iterator comparison): clang-tidy reads
// those two files against a copy of the headers with that one comparison made explicit
// (deploy/run-tests.sh), and nothing else needs the copy.
#pragma once

#include <rados/buffer_fwd.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace rbdluks {

class RbdBufferList {
 public:
  RbdBufferList();
  ~RbdBufferList();
  RbdBufferList(const RbdBufferList&) = delete;
  RbdBufferList& operator=(const RbdBufferList&) = delete;

  uint64_t size() const;
  // Appends a view of each of the list's buffers, in order, to `views`.
  void views(std::vector<std::span<const uint8_t>>& views) const;
  // Copies the first out.size() bytes (which must exist) into out.
  void copy_to(std::span<uint8_t> out) const;
  // Drops the contents and puts in one new buffer of `size` bytes, starting on a cache line,
  // returned for the caller to fill in. It is freed once neither this list nor librbd refers to it.
  std::span<uint8_t> replace_with_new_buffer(size_t size);
  // Makes this list a view of bytes [offset, offset + length) of `from` (which must hold them),
  // sharing its buffers rather than copying them.
  void share(const RbdBufferList& from, uint64_t offset, uint64_t length);
  // Drops the contents and puts in `size` zero bytes.
  void replace_with_zeros(size_t size);
  // Drops this list's references to its buffers.
  void clear();

  ceph::bufferlist& list() { return *list_; }

 private:
  std::unique_ptr<ceph::bufferlist> list_;
};

}  // namespace rbdluks
