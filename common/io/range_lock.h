// RangeLock: locks on [begin, end) ranges of an address space (bytes or sectors, the caller decides).
//
// The data path takes one around every read-modify-write of a partial sector, so two requests that
// touch the same sector can never both read the old sector and then overwrite each other's bytes.
// Overlapping ranges exclude each other unless both are shared; disjoint ranges never wait.
//
// Requests are served first come, first served among those that overlap: a request waits for every
// earlier conflicting request, held or still waiting, so a stream of readers cannot starve a writer
// and small ranges cannot starve a large one. The synchronous data path blocks in lock(); the
// asynchronous one uses lock_async(), whose callback receives the guard when the range is granted.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>

namespace rbdluks {

class RangeLock {
 public:
  enum class Mode { shared, exclusive };
  class Guard;

 private:
  struct Request {
    Request(uint64_t b, uint64_t e, Mode m) : begin(b), end(e), mode(m) {}
    uint64_t begin;
    uint64_t end;
    Mode mode;
    bool granted = false;
    std::condition_variable wakeup;         // for a blocked lock()
    std::function<void(Guard)> on_granted;  // for lock_async()
  };
  using RequestList = std::list<Request>;

 public:
  // Holds a granted range until destroyed or released. Must not outlive its RangeLock.
  class Guard {
   public:
    Guard() = default;
    Guard(Guard&& other) noexcept;
    Guard& operator=(Guard&& other) noexcept;
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() { release(); }

    bool owns_lock() const { return owner_ != nullptr; }
    void release();

   private:
    friend class RangeLock;
    Guard(RangeLock* owner, RequestList::iterator request) : owner_(owner), request_(request) {}

    RangeLock* owner_ = nullptr;
    RequestList::iterator request_;
  };

  RangeLock() = default;
  RangeLock(const RangeLock&) = delete;
  RangeLock& operator=(const RangeLock&) = delete;

  // Blocks until [begin, end) is granted. An empty range is granted at once.
  Guard lock(uint64_t begin, uint64_t end, Mode mode = Mode::exclusive);

  // The guard when [begin, end) can be granted right now without jumping the queue, else nullopt
  // (and nothing is queued).
  std::optional<Guard> try_lock(uint64_t begin, uint64_t end, Mode mode = Mode::exclusive);

  // Queues a request and returns at once. on_granted runs exactly once with the guard: in the calling
  // thread before lock_async returns when the range is free, otherwise in the thread whose release
  // unblocks it. It runs without any internal lock held, so it may lock, release or queue more.
  void lock_async(uint64_t begin, uint64_t end, Mode mode, std::function<void(Guard)> on_granted);

 private:
  // True when an earlier request in the queue conflicts with *request. Caller holds mutex_.
  bool blocked(RequestList::const_iterator request) const;
  void release(RequestList::iterator request);

  std::mutex mutex_;
  RequestList requests_;  // granted and waiting requests, in arrival order
};

}  // namespace rbdluks
