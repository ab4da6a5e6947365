// KdfMemoryBudget: a counter under a mutex; waiters wake whenever memory is given back or the
// ceiling changes.
#include "kdf_memory_budget.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace rbdluks {
namespace {

// The lease this thread holds, if any (see acquire).
thread_local uint64_t held_by_this_thread = 0;

uint64_t half_of_physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size) / 2;
}

const char* environment_limit() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): rbd-luks never writes the environment.
  return std::getenv("RBD_LUKS_KDF_MEMORY_LIMIT");
}

}  // namespace

uint64_t KdfMemoryBudget::parse_limit(const char* text, uint64_t fallback) {
  if (text == nullptr || *text < '0' || *text > '9') return fallback;
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text, &end, 10);
  const std::string suffix(end);
  const int shift = suffix.empty() ? 0 : suffix == "K" ? 10 : suffix == "M" ? 20 : suffix == "G" ? 30 : -1;
  if (errno != 0 || shift < 0 || value > (UINT64_MAX >> shift)) return fallback;
  return static_cast<uint64_t>(value) << shift;
}

KdfMemoryBudget& KdfMemoryBudget::process() {
  // Never destroyed: a derivation on another thread may still give its lease back during exit.
  static auto* const budget = new KdfMemoryBudget(parse_limit(environment_limit(), half_of_physical_memory()));
  return *budget;
}

void KdfMemoryBudget::set_limit(uint64_t bytes) {
  const std::lock_guard lock(mutex_);
  limit_ = bytes;
  freed_.notify_all();
}

uint64_t KdfMemoryBudget::limit() const {
  const std::lock_guard lock(mutex_);
  return limit_;
}

uint64_t KdfMemoryBudget::in_use() const {
  const std::lock_guard lock(mutex_);
  return in_use_;
}

KdfMemoryBudget::Lease KdfMemoryBudget::acquire(uint64_t bytes) {
  if (held_by_this_thread >= bytes && held_by_this_thread != 0) return Lease(nullptr, 0);
  std::unique_lock lock(mutex_);
  freed_.wait(lock, [&] { return limit_ == 0 || in_use_ == 0 || in_use_ + bytes <= limit_; });
  in_use_ += bytes;
  held_by_this_thread = bytes;
  return Lease(this, bytes);
}

void KdfMemoryBudget::release(uint64_t bytes) {
  held_by_this_thread = 0;
  const std::lock_guard lock(mutex_);
  in_use_ -= bytes;
  freed_.notify_all();
}

KdfMemoryBudget::Lease::~Lease() {
  if (budget_ != nullptr) budget_->release(bytes_);
}

}  // namespace rbdluks
