// ReencryptRequestFollower: see reencrypt_request_follower.h.
#include "reencrypt_request_follower.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <system_error>
#include <vector>

namespace rbdluks {
namespace {

using Clock = std::chrono::steady_clock;

// How often a run writes its progress into the record: every 2 s, and each twentieth of the run on a
// fast one (each write is a metadata change that every client of the image hears about).
constexpr auto kProgressInterval = std::chrono::seconds(2);
constexpr uint64_t kProgressParts = 20;
// How long a run waits after it says it is running before it reads the record again, for a
// withdrawal that crossed its go (the command watches a withdrawn record longer than this).
constexpr auto kWithdrawalWindow = std::chrono::seconds(2);

std::string keyslot_list(const std::vector<int>& keyslots) {
  std::string out;
  for (const int k : keyslots) out += (out.empty() ? "" : ",") + std::to_string(k);
  return out;
}

}  // namespace

ReencryptRequestFollower::ReencryptRequestFollower(EncryptedRbdImage& image, KeySource key, unsigned shared_handles,
                                                   std::chrono::milliseconds grace)
    : image_(image),
      key_(std::move(key)),
      shared_handles_(shared_handles),
      grace_(grace),
      self_("client." + std::to_string(image.client_id())) {
  image_.set_update_listener([this] {
    {
      const std::lock_guard lock(mutex_);
      notified_ = true;
    }
    wake_.notify_one();
  });
  // After the listener: notified_ starts true, so the thread reads the record once in any case.
  try {
    thread_ = std::thread([this] { follow(); });
  } catch (...) {  // no thread: the image must not call a follower that never was
    image_.set_update_listener({});
    throw;
  }
}

ReencryptRequestFollower::~ReencryptRequestFollower() {
  image_.set_update_listener({});
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

bool ReencryptRequestFollower::stopping() {
  const std::lock_guard lock(mutex_);
  return stopping_;
}

void ReencryptRequestFollower::follow() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return notified_ || stopping_; });
      if (stopping_) return;
      notified_ = false;
    }
    check();
  }
}

std::optional<ReencryptRequest> ReencryptRequestFollower::record() {
  auto value = image_.get_metadata(kReencryptRequestKey);
  if (!value || !*value) return std::nullopt;
  auto request = ReencryptRequest::parse(**value);
  if (!request) return std::nullopt;
  return std::move(*request);
}

void ReencryptRequestFollower::check() {
  // Any metadata change wakes this thread; most are not requests, and a record that cannot be read
  // now is read again at the next change.
  auto request = record();
  if (!request || request->id == ran_id_) return;
  // Requested again after a taker went away: taken again.
  if (request->state == ReencryptRequest::State::requested) {
    taken_id_ = request->id;
    request->state = ReencryptRequest::State::taken;
    request->client = self_;
    // Not run yet: the command confirms a taker it sees, and only while it still waits.
    static_cast<void>(image_.set_metadata(kReencryptRequestKey, request->to_json()));
    return;
  }
  if (request->state == ReencryptRequest::State::go && request->id == taken_id_ && request->client == self_) {
    ran_id_ = request->id;
    run(std::move(*request));
  }
}

void ReencryptRequestFollower::publish(const ReencryptRequest& request) {
  // Another request, or this one given to another client: the record is no longer this run's. (One
  // the command withdrew just as the run began is written over: the command then sees the run.)
  const auto recorded = record();
  if (!recorded || recorded->id != request.id || recorded->client != self_) return;
  // A record that cannot be written leaves the command without news; the run goes on regardless,
  // and its header state is what counts.
  static_cast<void>(image_.set_metadata(kReencryptRequestKey, request.to_json()));
}

void ReencryptRequestFollower::run(ReencryptRequest request) {
  // check() read `go` just now, but the command may be withdrawing the request at this moment (it
  // read `go` and writes `withdrawn`): the record is read again after a while, before anything
  // changes. A withdrawal later than that finds the run going and follows it.
  request.state = ReencryptRequest::State::running;
  publish(request);
  {
    std::unique_lock lock(mutex_);
    if (wake_.wait_for(lock, kWithdrawalWindow, [this] { return stopping_; })) return;
  }
  // A read that fails, or finds no record, lets the run go on; a record that is not this run's
  // (withdrawn, another request or owner, not a request) stops it here.
  if (auto value = image_.get_metadata(kReencryptRequestKey); value && *value) {
    auto recorded = ReencryptRequest::parse(**value);
    if (!recorded || recorded->id != request.id || recorded->client != self_ ||
        recorded->state == ReencryptRequest::State::withdrawn) {
      return;
    }
  }
  const auto end = [&](ReencryptRequest::State state, std::string message, const std::string& error = "") {
    request.state = state;
    request.message = std::move(message);
    request.error = error;
    publish(request);
  };
  auto key = key_();
  if (!key) return end(ReencryptRequest::State::failed, key.error().message(), error_kind_name(key.error()));

  ReencryptOptions options;
  options.cipher = request.cipher;
  options.key_bytes = request.key_bytes;
  options.hotzone_bytes = request.hotzone_bytes;
  options.drop_unopened_keyslots = request.drop_unopened_keyslots;
  auto published = Clock::now();
  options.progress = [&](uint64_t done, uint64_t total) {
    const bool next_part = done * kProgressParts / std::max<uint64_t>(total, 1) >
                           request.done_bytes * kProgressParts / std::max<uint64_t>(request.total_bytes, 1);
    request.done_bytes = done;
    request.total_bytes = total;
    if (!next_part && Clock::now() - published < kProgressInterval) return;
    published = Clock::now();
    publish(request);
  };
  options.stop_requested = [this] { return stopping(); };

  const std::vector<std::span<const uint8_t>> passphrases{key->span()};
  // The command's own handle, with which it said go, may still be closing.
  const auto give_up = Clock::now() + grace_;
  std::optional<Result<ReencryptReport>> ran;
  for (;;) {
    ran.emplace(image_.reencrypt(passphrases, options, shared_handles_, grace_));
    const bool busy = !*ran && ran->error().code() == std::errc::device_or_resource_busy;
    if (!busy || Clock::now() >= give_up) break;
    std::unique_lock lock(mutex_);
    if (wake_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_; })) break;
  }
  if (*ran) {
    const ReencryptReport& report = **ran;
    std::string message = "reencrypted " + std::to_string(report.data_bytes) +
                          " data bytes under a new volume key; keyslot(s) " + keyslot_list(report.new_keyslots) +
                          " hold it";
    if (!report.dropped_keyslots.empty()) message += "; dropped keyslot(s) " + keyslot_list(report.dropped_keyslots);
    return end(ReencryptRequest::State::done, message);
  }
  if (stopping()) {
    if (!image_.reencryption_unfinished()) {
      return end(ReencryptRequest::State::stopped, self_ + " closed the image before the run began; nothing changed");
    }
    return end(ReencryptRequest::State::stopped, self_ + " closed the image at " + std::to_string(request.done_bytes) +
                                                     " of " + std::to_string(request.total_bytes) +
                                                     " bytes; `rbd-luks reencrypt " + image_.name() +
                                                     "` finishes the run");
  }
  end(ReencryptRequest::State::failed, ran->error().message(), error_kind_name(ran->error()));
}

}  // namespace rbdluks
