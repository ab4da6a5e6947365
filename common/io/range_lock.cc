// RangeLock: one queue of requests in arrival order. A request is granted when no earlier request
// conflicts with it; a later request is never granted before an earlier conflicting one, so checking
// only the requests ahead is enough to keep every granted pair compatible.
#include "range_lock.h"

#include <cassert>
#include <utility>
#include <vector>

namespace rbdluks {
namespace {

template <typename A, typename B>
bool conflict(const A& a, const B& b) {
  const bool overlap = a.begin < a.end && b.begin < b.end && a.begin < b.end && b.begin < a.end;
  return overlap && (a.mode == RangeLock::Mode::exclusive || b.mode == RangeLock::Mode::exclusive);
}

}  // namespace

RangeLock::Guard::Guard(Guard&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), request_(other.request_) {}

RangeLock::Guard& RangeLock::Guard::operator=(Guard&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::exchange(other.owner_, nullptr);
    request_ = other.request_;
  }
  return *this;
}

void RangeLock::Guard::release() {
  if (owner_ != nullptr) std::exchange(owner_, nullptr)->release(request_);
}

bool RangeLock::blocked(RequestList::const_iterator request) const {
  for (auto it = requests_.begin(); it != request; ++it) {
    if (conflict(*it, *request)) return true;
  }
  return false;
}

RangeLock::Guard RangeLock::lock(uint64_t begin, uint64_t end, Mode mode) {
  assert(begin <= end);
  std::unique_lock lock(mutex_);
  auto request = requests_.emplace(requests_.end(), begin, end, mode);
  request->granted = !blocked(request);
  request->wakeup.wait(lock, [&] { return request->granted; });
  return Guard(this, request);
}

std::optional<RangeLock::Guard> RangeLock::try_lock(uint64_t begin, uint64_t end, Mode mode) {
  assert(begin <= end);
  const std::lock_guard lock(mutex_);
  const struct {
    uint64_t begin, end;
    Mode mode;
  } probe{begin, end, mode};
  for (const Request& queued : requests_) {
    if (conflict(queued, probe)) return std::nullopt;
  }
  auto request = requests_.emplace(requests_.end(), begin, end, mode);
  request->granted = true;
  return Guard(this, request);
}

void RangeLock::lock_async(uint64_t begin, uint64_t end, Mode mode, std::function<void(Guard)> on_granted) {
  assert(begin <= end);
  std::unique_lock lock(mutex_);
  auto request = requests_.emplace(requests_.end(), begin, end, mode);
  if (blocked(request)) {
    request->on_granted = std::move(on_granted);
    return;
  }
  request->granted = true;
  lock.unlock();
  on_granted(Guard(this, request));
}

void RangeLock::release(RequestList::iterator request) {
  std::vector<std::pair<std::function<void(Guard)>, Guard>> callbacks;
  {
    const std::lock_guard lock(mutex_);
    // Only requests queued after the released one can have been waiting for it.
    auto next = requests_.erase(request);
    for (auto it = next; it != requests_.end(); ++it) {
      if (it->granted || blocked(it)) continue;
      it->granted = true;
      if (it->on_granted) {
        callbacks.emplace_back(std::move(it->on_granted), Guard(this, it));
      } else {
        it->wakeup.notify_one();
      }
    }
  }
  for (auto& [on_granted, guard] : callbacks) on_granted(std::move(guard));
}

}  // namespace rbdluks
