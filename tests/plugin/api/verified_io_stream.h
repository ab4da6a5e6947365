// VerifiedIoStream: a stream of asynchronous writes, reads and flushes through the public C++ API
// (rbdluks::Image) for the tests that break the cluster under it, with the record needed to judge
// what the image reported: which writes were acknowledged, how each request ended and how long it
// took, and whether the image then holds exactly what the acknowledgements promised.
//
// Writes carry known patterns to disjoint ranges of varied size and alignment: whole sectors, one
// 512-byte unit, a few bytes, unaligned spans over several sectors. Every odd-numbered write
// starts in the last sector of the one before, so partial-sector writes (read, merge,
// compare-and-write) meet each other; every even-numbered one starts in a sector of its own, so no
// request waits behind more than one other for the sector range lock. Reads fetch parts of
// acknowledged writes and must return their pattern or an error.
//
// "Acknowledged" is what a caller may rely on:
// - with librbd's cache off, a write whose completion reported success;
// - with it on, where librbd completes writes before the OSDs have them, a write that completed
//   with success followed by a flush that was submitted after that completion and succeeded. A
//   failed flush puts every write not acknowledged by then in doubt, as an fsync error does: the
//   caller cannot tell which of them it concerns.
// A write that failed or is in doubt may have landed in any of its bytes or none. check_contents
// requires acknowledged bytes to hold their pattern, bytes in doubt their pattern or zeros (the
// image starts zeroed), and every other byte to be zero.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "encrypted_rbd_fixture.h"
#include "rbd_luks/image.h"

namespace rbdluks::testing {

class VerifiedIoStream {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Kind { write, read, flush };

  struct Options {
    uint64_t size = 0;                  // plaintext bytes the writes may use, from offset 0
    bool completion_is_durable = true;  // false with librbd's cache on
    unsigned max_in_flight = 8;         // requests in flight at once
    uint64_t seed = 1;                  // of the write shapes and patterns
  };

  // One request, as it ended.
  struct Outcome {
    Kind kind;
    Clock::time_point submitted;
    Clock::time_point completed;
    ssize_t result;
  };

  VerifiedIoStream(Image& image, const Options& options) : image_(image), state_(std::make_shared<State>()) {
    state_->options = options;
  }
  // stop() must have returned true: the callbacks of requests still in flight would use the image.
  ~VerifiedIoStream() {
    if (submitter_.joinable()) submitter_.join();
  }
  VerifiedIoStream(const VerifiedIoStream&) = delete;
  VerifiedIoStream& operator=(const VerifiedIoStream&) = delete;

  // Submits requests on a thread of its own, keeping max_in_flight in flight, until stop().
  void start() {
    submitter_ = std::thread([this] { submit_loop(); });
  }

  // Stops submitting and waits up to `patience` for the requests in flight; false if some are still
  // outstanding then (a hang: the caller must not destroy the image).
  bool stop(Clock::duration patience) {
    {
      const std::lock_guard lock(state_->mutex);
      state_->stopping = true;
    }
    state_->changed.notify_all();
    submitter_.join();
    std::unique_lock lock(state_->mutex);
    return state_->changed.wait_for(lock, patience, [&] { return state_->in_flight == 0; });
  }

  // A flush through the stream's record (stop() first), waiting up to `patience`; its result, or
  // nullopt if it did not complete in time.
  std::optional<ssize_t> flush(Clock::duration patience) {
    submit_flush();
    std::unique_lock lock(state_->mutex);
    if (!state_->changed.wait_for(lock, patience, [&] { return state_->in_flight == 0; })) return std::nullopt;
    return state_->outcomes.back().result;
  }

  std::vector<Outcome> outcomes() const {
    const std::lock_guard lock(state_->mutex);
    return {state_->outcomes.begin(), state_->outcomes.end()};
  }
  size_t acknowledged_writes() const { return count_writes(WriteState::acknowledged); }
  // Waits up to `patience` until more than `n` writes are acknowledged: a fault injected after a
  // fixed sleep finds a loaded machine's stream still warming up.
  bool wait_for_acknowledged_writes(size_t n, Clock::duration patience) const {
    std::unique_lock lock(state_->mutex);
    return state_->changed.wait_for(lock, patience, [&] { return state_->acknowledged.size() > n; });
  }
  size_t writes_in_doubt() const { return count_writes(WriteState::in_doubt) + count_writes(WriteState::failed); }
  // Reads that reported success with bytes other than the pattern of the write they read.
  size_t wrong_reads() const {
    const std::lock_guard lock(state_->mutex);
    return state_->wrong_reads;
  }

  // Reads the stream's range back through `image` and compares it with the record (see the top).
  void check_contents(Image& image) const {
    std::vector<uint8_t> expected;
    std::vector<Rule> rule;
    const std::string report = expectations(expected, rule);
    std::vector<uint8_t> got(expected.size());
    constexpr uint64_t kChunk = uint64_t{4} << 20;
    for (uint64_t at = 0; at < got.size(); at += kChunk) {
      const size_t n = std::min<uint64_t>(kChunk, got.size() - at);
      const Status read = image.read(at, std::span(got).subspan(at, n));
      ASSERT_TRUE(read) << read.error().message();
    }
    for (size_t i = 0; i < got.size(); ++i) {
      const bool fine = rule[i] == Rule::zero      ? got[i] == 0
                        : rule[i] == Rule::pattern ? got[i] == expected[i]
                                                   : got[i] == expected[i] || got[i] == 0;
      if (!fine) {
        ADD_FAILURE() << "plaintext byte " << i << " is " << int{got[i]} << ", expected "
                      << (rule[i] == Rule::zero      ? "0 (no write covers it)"
                          : rule[i] == Rule::pattern ? std::to_string(expected[i]) + " (an acknowledged write)"
                                                     : std::to_string(expected[i]) + " or 0 (a write in doubt)")
                      << "; " << report << "; " << describe_write_at(i);
        return;
      }
    }
  }

 private:
  enum class WriteState { in_flight, unconfirmed, acknowledged, failed, in_doubt };
  enum class Rule : uint8_t { zero, pattern, pattern_or_zero };

  struct Write {
    uint64_t offset;
    std::vector<uint8_t> data;
    WriteState state = WriteState::in_flight;
  };

  struct State {
    Options options;
    std::mutex mutex;
    std::condition_variable changed;
    bool stopping = false;
    unsigned in_flight = 0;
    std::deque<Write> writes;  // a deque: the buffers of earlier writes stay where they are
    std::deque<Outcome> outcomes;
    std::vector<size_t> unconfirmed;   // writes that completed with success, not yet acknowledged
    std::vector<size_t> acknowledged;  // what reads may fetch
    size_t wrong_reads = 0;
  };

  // Ends the request with outcome index `outcome`; the caller holds the mutex.
  static void complete(State& state, size_t outcome, ssize_t result) {
    state.outcomes[outcome].completed = Clock::now();
    state.outcomes[outcome].result = result;
    --state.in_flight;
    state.changed.notify_all();
  }

  size_t begin_request(Kind kind) {
    state_->outcomes.push_back({kind, Clock::now(), {}, 0});
    ++state_->in_flight;
    return state_->outcomes.size() - 1;
  }

  void submit_loop() {
    std::mt19937_64 random(state_->options.seed);
    uint64_t next_free = 0;  // writes go at or past this offset
    for (unsigned n = 0;; ++n) {
      {
        std::unique_lock lock(state_->mutex);
        state_->changed.wait(lock,
                             [&] { return state_->stopping || state_->in_flight < state_->options.max_in_flight; });
        if (state_->stopping) return;
      }
      if (n % 16 == 15) {
        submit_flush();
      } else if (n % 8 == 3) {
        submit_read(random);
      } else if (!submit_write(random, next_free)) {
        // The range is used up: go on with reads and flushes, at the pace of their completions.
        submit_read(random);
      }
    }
  }

  bool submit_write(std::mt19937_64& random, uint64_t& next_free) {
    constexpr uint64_t kSector = 4096;
    const uint64_t index = state_->writes.size();  // only this thread adds writes
    // Even-numbered writes start in a sector no other write touches.
    uint64_t at = index % 2 == 0 ? (next_free + kSector - 1) / kSector * kSector : next_free;
    uint64_t length = 0;
    switch (random() % 4) {
      case 0:  // whole sectors
        at = (at + kSector - 1) / kSector * kSector;
        length = kSector * (1 + random() % 16);
        break;
      case 1:  // one 512-byte unit
        at = (at + 511) / 512 * 512;
        length = 512;
        break;
      case 2:  // a few bytes
        at += index % 2 == 0 ? random() % kSector : random() % 64;
        length = 1 + random() % 600;
        break;
      default:  // unaligned, over several sectors
        at += index % 2 == 0 ? random() % kSector : random() % 64;
        length = 5000 + random() % 65000;
        break;
    }
    if (at + length > state_->options.size) return false;
    next_free = at + length;
    Write write{at, random_bytes(length, state_->options.seed * 1000003 + index)};
    std::span<const uint8_t> data;
    size_t outcome = 0;
    {
      const std::lock_guard lock(state_->mutex);
      state_->writes.push_back(std::move(write));
      data = state_->writes.back().data;
      outcome = begin_request(Kind::write);
    }
    const Status submitted = image_.aio_write(at, data, [state = state_, index, outcome](ssize_t r) {
      const std::lock_guard lock(state->mutex);
      Write& w = state->writes[index];
      if (r == static_cast<ssize_t>(w.data.size())) {
        if (state->options.completion_is_durable) {
          w.state = WriteState::acknowledged;
          state->acknowledged.push_back(index);
        } else {
          w.state = WriteState::unconfirmed;
          state->unconfirmed.push_back(index);
        }
      } else {
        w.state = WriteState::failed;
      }
      complete(*state, outcome, r);
    });
    if (!submitted) fail_submission(outcome, submitted);
    return true;
  }

  void submit_read(std::mt19937_64& random) {
    struct Read {
      std::vector<uint8_t> expected;
      std::vector<uint8_t> got;
    };
    auto read = std::make_shared<Read>();
    uint64_t at = 0;
    size_t outcome = 0;
    {
      const std::lock_guard lock(state_->mutex);
      if (state_->acknowledged.empty()) return;
      const Write& w = state_->writes[state_->acknowledged[random() % state_->acknowledged.size()]];
      const uint64_t skip = random() % w.data.size();
      const uint64_t length = 1 + random() % (w.data.size() - skip);
      at = w.offset + skip;
      read->expected.assign(w.data.begin() + static_cast<ptrdiff_t>(skip),
                            w.data.begin() + static_cast<ptrdiff_t>(skip + length));
      read->got.assign(length, 0xee);
      outcome = begin_request(Kind::read);
    }
    const Status submitted = image_.aio_read(at, read->got, [state = state_, read, outcome](ssize_t r) {
      const std::lock_guard lock(state->mutex);
      if (r >= 0 && (r != static_cast<ssize_t>(read->got.size()) || read->got != read->expected)) ++state->wrong_reads;
      complete(*state, outcome, r);
    });
    if (!submitted) fail_submission(outcome, submitted);
  }

  void submit_flush() {
    std::vector<size_t> covered;
    size_t outcome = 0;
    {
      const std::lock_guard lock(state_->mutex);
      covered = state_->unconfirmed;
      outcome = begin_request(Kind::flush);
    }
    const Status submitted = image_.aio_flush([state = state_, covered, outcome](ssize_t r) {
      const std::lock_guard lock(state->mutex);
      if (r == 0) {
        for (size_t index : covered) {
          Write& w = state->writes[index];
          if (w.state != WriteState::unconfirmed) continue;
          w.state = WriteState::acknowledged;
          state->acknowledged.push_back(index);
          std::erase(state->unconfirmed, index);
        }
      } else {
        for (size_t index : state->unconfirmed) state->writes[index].state = WriteState::in_doubt;
        state->unconfirmed.clear();
      }
      complete(*state, outcome, r);
    });
    if (!submitted) fail_submission(outcome, submitted);
  }

  // A request the image refused to take (out of memory): no callback will come.
  void fail_submission(size_t outcome, const Status& submitted) {
    ADD_FAILURE() << "submitting failed: " << submitted.error().message();
    const std::lock_guard lock(state_->mutex);
    complete(*state_, outcome, -ENOMEM);
  }

  size_t count_writes(WriteState wanted) const {
    const std::lock_guard lock(state_->mutex);
    return static_cast<size_t>(
        std::count_if(state_->writes.begin(), state_->writes.end(), [&](const Write& w) { return w.state == wanted; }));
  }

  // The expected plaintext and the rule for each byte, up to the end of the last write; and a
  // summary of the writes' states for failure messages.
  std::string expectations(std::vector<uint8_t>& expected, std::vector<Rule>& rule) const {
    const std::lock_guard lock(state_->mutex);
    uint64_t end = 0;
    for (const Write& w : state_->writes) end = std::max(end, w.offset + w.data.size());
    expected.assign(end, 0);
    rule.assign(end, Rule::zero);
    size_t counts[5] = {};
    for (const Write& w : state_->writes) {
      ++counts[static_cast<int>(w.state)];
      std::copy(w.data.begin(), w.data.end(), expected.begin() + static_cast<ptrdiff_t>(w.offset));
      std::fill_n(rule.begin() + static_cast<ptrdiff_t>(w.offset), w.data.size(),
                  w.state == WriteState::acknowledged ? Rule::pattern : Rule::pattern_or_zero);
    }
    return std::to_string(state_->writes.size()) + " writes: " + std::to_string(counts[2]) + " acknowledged, " +
           std::to_string(counts[1]) + " completed but not flushed, " + std::to_string(counts[3]) + " failed, " +
           std::to_string(counts[4]) + " in doubt after a failed flush, " + std::to_string(counts[0]) + " in flight";
  }

  std::string describe_write_at(uint64_t offset) const {
    const std::lock_guard lock(state_->mutex);
    for (size_t i = 0; i < state_->writes.size(); ++i) {
      const Write& w = state_->writes[i];
      if (offset >= w.offset && offset < w.offset + w.data.size()) {
        return "write " + std::to_string(i) + " covers it: " + std::to_string(w.data.size()) + " bytes at " +
               std::to_string(w.offset);
      }
    }
    return "no write covers it";
  }

  Image& image_;
  std::shared_ptr<State> state_;  // shared with the callbacks, which may outlive a hung stream
  std::thread submitter_;
};

}  // namespace rbdluks::testing
