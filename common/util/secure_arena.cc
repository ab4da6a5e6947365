// The secure arena: one mutex-guarded table of the pages this process holds for secrets. A page of
// a size class ("slab") is carved into equal slots tracked by a bitmap; larger allocations map
// their own pages. Empty slabs are unmapped, except the last one of each class, which stays for
// the next secret rather than cost a map, lock and unmap every time.
#include "secure_arena.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "alignment.h"
#include "secure_buffer.h"

namespace rbdluks {
namespace {

constexpr size_t kSmallestClass = 16;

size_t page_size() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

// Size classes 16, 32, ... up to half a page.
size_t class_size(size_t index) { return kSmallestClass << index; }
size_t class_of(size_t size) {
  const size_t rounded = std::bit_ceil(std::max(size, kSmallestClass));
  return static_cast<size_t>(std::countr_zero(rounded / kSmallestClass));
}

struct Slab {
  size_t class_index = 0;
  size_t used = 0;
  std::vector<uint64_t> busy;  // one bit per slot
};

struct Mapping {
  size_t bytes = 0;
  bool locked = false;
  std::optional<Slab> slab;  // nullopt: one large allocation
};

class Arena {
 public:
  static Arena& instance() {
    // Never destroyed: secrets in static objects may be freed after it would be.
    static Arena* arena = new Arena;
    return *arena;
  }

  void* allocate(size_t size) {
    const std::lock_guard lock(mutex_);
    if (size > page_size() / 2) return map(round_up(size, page_size()), std::nullopt);
    const size_t index = class_of(size);
    for (auto& [page, mapping] : mappings_) {
      Slab* slab = mapping.slab ? &*mapping.slab : nullptr;
      if (slab == nullptr || slab->class_index != index || slab->used == page_size() / class_size(index)) continue;
      return take_slot(page, *slab);
    }
    Slab slab;
    slab.class_index = index;
    slab.busy.assign((page_size() / class_size(index) + 63) / 64, 0);
    uint8_t* page = map(page_size(), std::move(slab));
    return take_slot(page, *mappings_.at(page).slab);
  }

  void free(void* data) {
    const std::lock_guard lock(mutex_);
    auto* const address = static_cast<uint8_t*>(data);
    auto it = mappings_.upper_bound(address);
    if (it == mappings_.begin()) return;
    --it;
    // Not ours: the parent's memory in a forked child, reserved and inaccessible, so left alone.
    if (static_cast<size_t>(address - it->first) >= it->second.bytes) return;
    Mapping& mapping = it->second;
    if (!mapping.slab) {
      unmap(it);
      return;
    }
    Slab& slab = *mapping.slab;
    const auto slot = static_cast<size_t>(address - it->first) / class_size(slab.class_index);
    secure_zero(data, class_size(slab.class_index));
    slab.busy[slot / 64] &= ~(uint64_t{1} << (slot % 64));
    if (--slab.used == 0 && !last_of_class(it)) unmap(it);
  }

  SecureMemoryStatus status() {
    const std::lock_guard lock(mutex_);
    return status_;
  }

  void set_warning(SecureMemoryWarning warning) { warning_.store(warning); }

 private:
  Arena() { pthread_atfork(&Arena::before_fork, &Arena::after_fork_in_parent, &Arena::after_fork_in_child); }

  uint8_t* map(size_t bytes, std::optional<Slab> slab) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    (void)madvise(p, bytes, MADV_DONTDUMP);
    (void)madvise(p, bytes, MADV_DONTFORK);
#ifdef MADV_WIPEONFORK
    (void)madvise(p, bytes, MADV_WIPEONFORK);  // EINVAL before Linux 4.14: DONTFORK alone then
#endif
    Mapping mapping{bytes, mlock(p, bytes) == 0, std::move(slab)};
    if (mapping.locked) {
      status_.locked_bytes += bytes;
    } else {
      status_.unlocked_bytes += bytes;
      if (status_.lock_error == 0) {
        status_.lock_error = errno;
        warn(errno);
      }
    }
    auto* page = static_cast<uint8_t*>(p);
    mappings_.emplace(page, std::move(mapping));
    return page;  // anonymous mappings are zero-filled
  }

  void unmap(std::map<uint8_t*, Mapping>::iterator it) {
    uint8_t* p = it->first;
    const Mapping& mapping = it->second;
    secure_zero(p, mapping.bytes);  // a slab's slots are zero already; a large allocation is not
    (mapping.locked ? status_.locked_bytes : status_.unlocked_bytes) -= mapping.bytes;
    if (mapping.locked) munlock(p, mapping.bytes);
    munmap(p, mapping.bytes);
    mappings_.erase(it);
  }

  static void* take_slot(uint8_t* page, Slab& slab) {
    for (size_t word = 0;; ++word) {
      if (~slab.busy[word] == 0) continue;
      const auto bit = static_cast<size_t>(std::countr_one(slab.busy[word]));
      slab.busy[word] |= uint64_t{1} << bit;
      ++slab.used;
      return page + (word * 64 + bit) * class_size(slab.class_index);
    }
  }

  bool last_of_class(std::map<uint8_t*, Mapping>::iterator empty) const {
    for (auto it = mappings_.begin(); it != mappings_.end(); ++it) {
      if (it != empty && it->second.slab && it->second.slab->class_index == empty->second.slab->class_index) {
        return false;
      }
    }
    return true;
  }

  void warn(int error) const {
    const SecureMemoryWarning warning = warning_.load();
    if (warning == nullptr) return;
    rlimit limit{};
    getrlimit(RLIMIT_MEMLOCK, &limit);
    const std::string allowed =
        limit.rlim_cur == RLIM_INFINITY ? "unlimited" : std::to_string(limit.rlim_cur) + " bytes";
    const std::string message =
        "cannot lock memory for keys and passphrases (mlock: " + std::generic_category().message(error) +
        "; RLIMIT_MEMLOCK " + allowed + "): they may be written to swap";
    warning(message.c_str());
  }

  // The child keeps no secret of the parent: its mappings are not inherited (DONTFORK), and the
  // addresses are reserved so that nothing else lands there while the parent's SecureBuffers, now
  // dangling, may still be destroyed (free() ignores them) or, by mistake, read (they fault).
  static void before_fork() { instance().mutex_.lock(); }
  static void after_fork_in_parent() { instance().mutex_.unlock(); }
  static void after_fork_in_child() {
    Arena& arena = instance();
    for (const auto& [page, mapping] : arena.mappings_) {
      (void)mmap(page, mapping.bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    }
    arena.mappings_.clear();
    arena.status_ = {};
    arena.mutex_.unlock();
  }

  std::mutex mutex_;
  std::map<uint8_t*, Mapping> mappings_;  // by first page
  SecureMemoryStatus status_;
  std::atomic<SecureMemoryWarning> warning_{nullptr};
};

}  // namespace

void* secure_allocate(size_t size) { return Arena::instance().allocate(size); }

void secure_free(void* data) {
  if (data != nullptr) Arena::instance().free(data);
}

SecureMemoryStatus secure_memory_status() { return Arena::instance().status(); }

void set_secure_memory_warning(SecureMemoryWarning warning) { Arena::instance().set_warning(warning); }

}  // namespace rbdluks
