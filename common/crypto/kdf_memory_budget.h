// KdfMemoryBudget: a process-wide ceiling on the memory that argon2 derivations hold at once.
//
// Opening a keyslot formatted with argon2 allocates the keyslot's memory cost (cryptsetup formats
// up to 1 GiB, and scales it down only on small machines) for the whole derivation, about the
// unlock time it was formatted for (2 s by default), and frees it at once afterwards. A client that
// opens many volumes at the same time (a hypervisor starting its guests) would otherwise hold one
// such allocation per open at once. A derivation waits until its memory fits under the ceiling
// beside the ones running; one that alone exceeds the ceiling runs once no other is running, so a
// volume never becomes unopenable.
//
// The ceiling is half of physical memory (cryptsetup's own cap when it formats), unless set by the
// environment (RBD_LUKS_KDF_MEMORY_LIMIT, bytes with an optional K, M or G) or the API.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace rbdluks {

class KdfMemoryBudget {
 public:
  static KdfMemoryBudget& process();

  // Memory the derivations may hold at once; 0 means no ceiling.
  void set_limit(uint64_t bytes);
  uint64_t limit() const;

  // Memory the running derivations hold now.
  uint64_t in_use() const;

  // The right to hold `bytes` until destroyed.
  class Lease {
   public:
    Lease(Lease&& other) noexcept : budget_(other.budget_), bytes_(other.bytes_) { other.budget_ = nullptr; }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease();

   private:
    friend class KdfMemoryBudget;
    Lease(KdfMemoryBudget* budget, uint64_t bytes) : budget_(budget), bytes_(bytes) {}
    KdfMemoryBudget* budget_;
    uint64_t bytes_;
  };

  // Blocks until `bytes` fit beside the derivations running (or none is running). A thread that
  // already holds a lease of at least `bytes` gets an empty one at once: the KDF benchmark takes
  // its lease before it starts the clock, so that waiting for memory is not timed as argon2's cost.
  Lease acquire(uint64_t bytes);

  explicit KdfMemoryBudget(uint64_t limit) : limit_(limit) {}

  // The ceiling RBD_LUKS_KDF_MEMORY_LIMIT's value gives: bytes with an optional K, M or G ("0": none);
  // `fallback` when text is null, empty or not such a number (a typo must not lift the ceiling).
  static uint64_t parse_limit(const char* text, uint64_t fallback);

 private:
  void release(uint64_t bytes);

  mutable std::mutex mutex_;
  std::condition_variable freed_;
  uint64_t limit_;
  uint64_t in_use_ = 0;
};

}  // namespace rbdluks
