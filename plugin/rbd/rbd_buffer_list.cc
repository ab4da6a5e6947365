// RbdBufferList: the few ceph::bufferlist operations the dispatch layer needs.
#include "rbd_buffer_list.h"

#include <rados/buffer.h>

#include <cassert>
#include <cstdint>

namespace rbdluks {
namespace {
constexpr size_t kCacheLine = 64;
}  // namespace

RbdBufferList::RbdBufferList() : list_(std::make_unique<ceph::bufferlist>()) {}
RbdBufferList::~RbdBufferList() = default;

uint64_t RbdBufferList::size() const { return list_->length(); }

void RbdBufferList::views(std::vector<std::span<const uint8_t>>& views) const {
  for (const auto& buffer : list_->buffers()) {
    views.emplace_back(reinterpret_cast<const uint8_t*>(buffer.c_str()), buffer.length());
  }
}

void RbdBufferList::copy_to(std::span<uint8_t> out) const {
  assert(out.size() <= list_->length());
  list_->begin().copy(static_cast<unsigned>(out.size()), reinterpret_cast<char*>(out.data()));
}

std::span<uint8_t> RbdBufferList::replace_with_new_buffer(size_t size) {
  // Allocated as librbd allocates its own copy of a caller's write (buffer::create, which is
  // posix_memalign with 8-byte alignment), not page-aligned: glibc serves a page-aligned
  // request by carving a larger chunk and freeing the slack before and after it, and those small
  // free fragments, reused by librbd's small allocations, pin the heap so that freed megabytes
  // never coalesce or go back to the kernel. With page-aligned buffers, fio's 4 MiB writes at queue
  // depth 16 held 3.2x the peak memory of plain librbd (docs/performance.md, "Memory"). The data
  // starts on a cache line inside the allocation, which the cipher's 64-byte stores want.
  ceph::bufferptr whole(ceph::buffer::create(static_cast<unsigned>(size + kCacheLine - 1)));
  const auto address = reinterpret_cast<uintptr_t>(whole.c_str());
  const auto skip = static_cast<unsigned>((kCacheLine - address % kCacheLine) % kCacheLine);
  ceph::bufferptr buffer(whole, skip, static_cast<unsigned>(size));
  const std::span<uint8_t> bytes(reinterpret_cast<uint8_t*>(buffer.c_str()), size);
  list_->clear();
  list_->push_back(std::move(buffer));
  return bytes;
}

void RbdBufferList::share(const RbdBufferList& from, uint64_t offset, uint64_t length) {
  assert(offset + length <= from.size());
  list_->clear();
  list_->substr_of(*from.list_, static_cast<unsigned>(offset), static_cast<unsigned>(length));
}

void RbdBufferList::replace_with_zeros(size_t size) {
  list_->clear();
  list_->append_zero(static_cast<unsigned>(size));
}

void RbdBufferList::clear() { list_->clear(); }

}  // namespace rbdluks
