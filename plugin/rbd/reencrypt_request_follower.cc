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
// The command closes its own handle of the image after it records the request; until then the run
// sees another client and refuses, so it tries again for this long.
constexpr auto kOtherClientGrace = std::chrono::seconds(10);

std::string keyslot_list(const std::vector<int>& keyslots) {
  std::string out;
  for (const int k : keyslots) out += (out.empty() ? "" : ",") + std::to_string(k);
  return out;
}

}  // namespace

ReencryptRequestFollower::ReencryptRequestFollower(EncryptedRbdImage& image, KeySource key, unsigned shared_handles)
    : image_(image), key_(std::move(key)), shared_handles_(shared_handles) {
  thread_ = std::thread([this] { follow(); });
  image_.set_update_listener([this] {
    {
      const std::lock_guard lock(mutex_);
      notified_ = true;
    }
    wake_.notify_one();
  });
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
    // Any metadata change wakes this thread; most are not requests, and a record that cannot be
    // read now is read again at the next change.
    auto value = image_.get_metadata(kReencryptRequestKey);
    if (!value || !*value) continue;
    auto request = ReencryptRequest::parse(**value);
    if (!request || request->state != ReencryptRequest::State::requested || request->id == last_id_) continue;
    last_id_ = request->id;
    run(std::move(*request));
  }
}

void ReencryptRequestFollower::publish(const ReencryptRequest& request) {
  auto value = image_.get_metadata(kReencryptRequestKey);
  if (value && *value) {
    auto recorded = ReencryptRequest::parse(**value);
    if (recorded && recorded->id != request.id) return;
  }
  // A record that cannot be written leaves the command without news; the run goes on regardless,
  // and its header state is what counts.
  (void)image_.set_metadata(kReencryptRequestKey, request.to_json());
}

void ReencryptRequestFollower::run(ReencryptRequest request) {
  request.state = ReencryptRequest::State::running;
  request.client = "client." + std::to_string(image_.client_id());
  publish(request);
  const auto end = [&](ReencryptRequest::State state, std::string message) {
    request.state = state;
    request.message = std::move(message);
    publish(request);
  };
  auto key = key_();
  if (!key) return end(ReencryptRequest::State::failed, key.error().message());

  ReencryptOptions options;
  options.cipher = request.cipher;
  options.key_bytes = request.key_bytes;
  options.hotzone_bytes = request.hotzone_bytes != 0 ? request.hotzone_bytes : EncryptedRbdImage::kOnlineHotzoneBytes;
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
  const auto give_up = Clock::now() + kOtherClientGrace;
  std::optional<Result<ReencryptReport>> ran;
  for (;;) {
    ran.emplace(image_.reencrypt(passphrases, options, shared_handles_));
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
    const std::string who = "client." + std::to_string(image_.client_id());
    if (!image_.reencryption_unfinished()) {
      return end(ReencryptRequest::State::stopped, who + " closed the image before the run began; nothing changed");
    }
    return end(ReencryptRequest::State::stopped, who + " closed the image at " + std::to_string(request.done_bytes) +
                                                     " of " + std::to_string(request.total_bytes) +
                                                     " bytes; `rbd-luks reencrypt " + image_.name() +
                                                     "` finishes the run");
  }
  end(ReencryptRequest::State::failed, ran->error().message());
}

}  // namespace rbdluks
