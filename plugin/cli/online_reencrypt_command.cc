// `rbd-luks reencrypt TARGET --online`: a new volume key for an RBD image that another process
// serves, without stopping it. The command records a request in the image's metadata
// (reencrypt_request.h); the client that has the image open runs it in its own data path and
// writes back how it goes, and the command shows that progress until the run ends. It needs no
// key: the client re-wraps the keyslot that its own key opens.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "commands.h"
#include "decryption.h"
#include "luks2_header.h"
#include "luks2_reencrypt_state.h"
#include "progress.h"
#include "rbd_image.h"
#include "reencrypt_options.h"
#include "reencrypt_request.h"
#include "stop_signal.h"
#include "target.h"

namespace rbdluks::cli {
namespace {

using Clock = std::chrono::steady_clock;

// How long a client has to take the request before the command withdraws it.
constexpr auto kTakeTimeout = std::chrono::seconds(30);
constexpr auto kPollInterval = std::chrono::milliseconds(500);
// How often the command checks that the client running the request still has the image open.
constexpr auto kClientCheckInterval = std::chrono::seconds(5);
// A run reports progress at least every 2 s; a record unchanged this long means its client can no
// longer write it.
constexpr auto kStallTimeout = std::chrono::minutes(5);
// How long a withdrawn request is watched for a client that began the run just then: longer than a
// client waits after it says running before it reads the record again (2 s), with room for this
// command's own write.
constexpr auto kWithdrawSettle = std::chrono::seconds(5);
// A request still waiting for a client is another command's for this long since it wrote it last;
// after that it is taken to have gone (killed), and a new request replaces it.
constexpr int64_t kPendingSeconds = 60;

int64_t wall_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool pending(const ReencryptRequest& r) {
  return r.state == ReencryptRequest::State::requested || r.state == ReencryptRequest::State::taken ||
         r.state == ReencryptRequest::State::go;
}

std::string clients_text(const std::vector<RbdWatcher>& watchers) {
  std::string out;
  for (const RbdWatcher& w : watchers) {
    out += (out.empty() ? "" : ", ") + std::string("client.") + std::to_string(w.client_id) + " at " + w.address;
  }
  return out;
}

// The watchers of the image other than this process.
Result<std::vector<RbdWatcher>> other_clients(const RbdImage& image) {
  RL_ASSIGN(auto all, image.watchers());
  std::vector<RbdWatcher> others;
  for (const RbdWatcher& w : all) {
    if (w.client_id != image.client_id()) others.push_back(w);
  }
  return others;
}

// Whether `client` ("client.N") is among clients.
bool among(const std::vector<RbdWatcher>& clients, const std::string& client) {
  return std::any_of(clients.begin(), clients.end(),
                     [&](const RbdWatcher& w) { return "client." + std::to_string(w.client_id) == client; });
}

RbdImage& rbd_of(RawImage& image) { return dynamic_cast<RbdImage&>(image); }

Result<ReencryptRequest> request_from(const CommandLine& cl, const Target& target) {
  for (const char* option : {"sector-size", "keyslot-passphrase-file", "resilience-hash", "threads", "resume"}) {
    if (cl.has(option)) {
      return Error(Errc::usage, std::string("--online takes no --") + option +
                                    ": the client that serves the image runs the reencryption with its own key and "
                                    "keeps the sector size");
    }
  }
  RL_ASSIGN(const ReencryptOptions wanted, reencrypt_options_from(cl, target, false));
  RL_ASSIGN(ReencryptRequest request, ReencryptRequest::create());
  request.cipher = wanted.cipher;
  request.key_bytes = wanted.key_bytes;
  request.hotzone_bytes = cl.has("hotzone-size") ? wanted.hotzone_bytes : 0;
  request.drop_unopened_keyslots = wanted.drop_unopened_keyslots;
  return request;
}

// Records the request (or finds the run that a client is doing already, which the command then
// follows), and closes the image again: its handle would count as another client for the run.
Result<ReencryptRequest> submit(const CommandLine& cl, const Target& target, ReencryptRequest request) {
  RL_ASSIGN(auto image, open_target(cl, target, OpenMode::read_write));
  RL_TRY(refuse_recorded_decryption(*image));
  RL_ASSIGN(const auto header, read_luks2_header(*image));
  RL_ASSIGN(const auto clients, other_clients(rbd_of(*image)));
  RL_ASSIGN(const auto recorded, image->get_metadata(kReencryptRequestKey));
  if (recorded) {
    auto earlier = ReencryptRequest::parse(*recorded);
    if (earlier && earlier->state == ReencryptRequest::State::running && among(clients, earlier->client)) {
      inform(cl, "following the reencryption that " + earlier->client + " runs already");
      return std::move(*earlier);
    }
    // Wall clocks of two hosts: a skew only makes a dead command's request wait longer to go.
    if (earlier && pending(*earlier) && std::abs(wall_seconds() - earlier->updated) < kPendingSeconds) {
      return Error(Errc::failure, target.spec + ": another `rbd-luks reencrypt --online` waits for its request (" +
                                      earlier->id + ", " + state_name(earlier->state) +
                                      ") to begin; try again once it has ended");
    }
  }
  if (luks2_reencrypt_in_progress(header.header.metadata)) {
    return Error(Errc::usage, target.spec + ": its header records a reencryption already; `rbd-luks reencrypt " +
                                  target.spec + "` finishes it once no client has the image open");
  }
  if (clients.empty()) {
    return Error(Errc::usage, target.spec + ": no client has it open to run the reencryption; `rbd-luks reencrypt " +
                                  target.spec + "` (without --online) runs it here");
  }
  request.updated = wall_seconds();
  RL_TRY(image->set_metadata(kReencryptRequestKey, request.to_json()));
  RL_TRY(rbd_of(*image).close());
  return request;
}

// Moves this command's request on to `state`, if the record still holds it in a state that may go
// there: `go` and `requested` (offered again) only from `taken` by request.client; `withdrawn` from
// any state before running. A client may have moved it on meanwhile (metadata has no
// compare-and-set, so this reads first). The image is closed again at once: its watch would count
// as another client.
Status confirm(const CommandLine& cl, const Target& target, const ReencryptRequest& request,
               ReencryptRequest::State state) {
  RL_ASSIGN(auto image, open_target(cl, target, OpenMode::read_write));
  RL_ASSIGN(const auto recorded, image->get_metadata(kReencryptRequestKey));
  if (recorded) {
    const auto now = ReencryptRequest::parse(*recorded);
    const bool ours = now && now->id == request.id;
    const bool may = state == ReencryptRequest::State::withdrawn
                         ? ours && pending(*now)
                         : ours && now->state == ReencryptRequest::State::taken && now->client == request.client;
    if (may) {
      ReencryptRequest next = *now;
      next.state = state;
      next.updated = wall_seconds();
      if (state == ReencryptRequest::State::requested) next.client.clear();
      RL_TRY(image->set_metadata(kReencryptRequestKey, next.to_json()));
    }
  }
  return rbd_of(*image).close();
}

Error withdrawn(const std::string& spec, const std::string& why) {
  return Error(Errc::failure, spec + ": " + why + "; the request is withdrawn, nothing changed");
}

constexpr const char* kFollowers =
    "clients that run them: images opened read-write through the preload library, `rbd-luks nbd-server` "
    "without --reencrypt, rbdluks::Image::follow_reencrypt_requests and rbd_luks_follow_reencrypt_requests";

}  // namespace

Status online_reencrypt(const CommandLine& cl, const std::string& spec) {
  RL_ASSIGN(const Target target, parse_target(spec));
  if (target.kind != Target::Kind::rbd || target.snapshot) {
    return Error(Errc::usage, spec + ": --online reencrypts an RBD image (rbd:POOL/IMAGE) that a client serves");
  }
  RL_ASSIGN(ReencryptRequest request, request_from(cl, target));
  // From before the request exists: an interrupted command withdraws it.
  const StopOnSignal signals;
  clear_stop_signal();
  RL_ASSIGN(request, submit(cl, target, std::move(request)));

  // Watched read-only: such an open does not count as a client of the image.
  RL_ASSIGN(auto image, open_target(cl, target, OpenMode::read_only));
  RbdImage& rbd = rbd_of(*image);
  auto waiting_since = Clock::now();  // for a client to take the request, or to start it
  auto client_checked = Clock::now();
  // Once withdrawn: when, and why. A client that began the run just then overwrites the record
  // within a few seconds, and the command follows the run after all.
  bool withdrawing = false;
  Clock::time_point withdrawn_at;
  std::string withdrawn_why;
  std::string last_value;
  auto changed_at = Clock::now();
  std::optional<Progress> progress;
  const bool shown = !cl.has("quiet") && isatty(STDERR_FILENO) != 0;
  for (;; std::this_thread::sleep_for(kPollInterval)) {
    RL_ASSIGN(const auto value, image->get_metadata(kReencryptRequestKey));
    if (!value) return Error(Errc::failure, spec + ": the reencryption request was removed before it ended");
    const auto parsed = ReencryptRequest::parse(*value);
    if (!parsed) return Error(Errc::failure, spec + ": " + parsed.error().message());
    const ReencryptRequest& now = *parsed;
    if (*value != last_value) {
      last_value = *value;
      changed_at = Clock::now();
    }
    if (now.id != request.id) {
      return Error(Errc::failure, spec + ": another reencryption request (" + now.id + ") replaced this one");
    }
    const bool started = now.state == ReencryptRequest::State::running || now.state == ReencryptRequest::State::done ||
                         now.state == ReencryptRequest::State::failed || now.state == ReencryptRequest::State::stopped;
    if (withdrawing) {
      // A client that read the request before the withdrawal may write over it; the request is
      // withdrawn again, and a run that began is followed. Nothing else moves it on now.
      if (now.state == ReencryptRequest::State::running) {
        withdrawing = false;
        inform(cl, now.client + " had begun the run as the request was withdrawn; following it");
      } else if (!started) {
        if (Clock::now() - withdrawn_at >= kWithdrawSettle) return withdrawn(spec, withdrawn_why);
        if (now.state != ReencryptRequest::State::withdrawn) {
          RL_TRY(confirm(cl, target, request, ReencryptRequest::State::withdrawn));
        }
        continue;
      }
    }
    if (!started && !withdrawing && (stop_signalled() || Clock::now() - waiting_since >= kTakeTimeout)) {
      if (stop_signalled()) {
        withdrawn_why = "stopped before a client began the run";
      } else if (now.state == ReencryptRequest::State::requested) {
        RL_ASSIGN(const auto clients, other_clients(rbd));
        withdrawn_why = "no client took the request within 30 s; the clients that have the image open (" +
                        clients_text(clients) + ") do not run online reencryptions (" + kFollowers + ")";
      } else {
        withdrawn_why = now.client + " took the request but did not begin the run within 30 s";
      }
      request.client = now.client;
      RL_TRY(confirm(cl, target, request, ReencryptRequest::State::withdrawn));
      withdrawing = true;
      withdrawn_at = Clock::now();
      continue;
    }
    switch (now.state) {
      case ReencryptRequest::State::requested:
      case ReencryptRequest::State::go:
        break;
      case ReencryptRequest::State::taken: {
        // The one taker this command names runs it, and only now that the command still waits; a
        // taker that has closed the image since (a short-lived opener) gets it offered again.
        request.client = now.client;
        RL_ASSIGN(const auto clients, other_clients(rbd));
        const bool there = among(clients, now.client);
        RL_TRY(confirm(cl, target, request, there ? ReencryptRequest::State::go : ReencryptRequest::State::requested));
        if (there) waiting_since = Clock::now();
        break;
      }
      case ReencryptRequest::State::running:
        if (now.total_bytes != 0) {
          if (!progress) progress.emplace("reencrypt (in " + now.client + ")", now.total_bytes, shown);
          progress->update(now.done_bytes);
        }
        if (Clock::now() - changed_at >= kStallTimeout) {
          return Error(Errc::failure, spec + ": " + now.client +
                                          " has reported no progress for 5 minutes, though it has the image open; "
                                          "`rbd-luks dump " +
                                          spec + "` shows how far the header says the run is");
        }
        if (Clock::now() - client_checked >= kClientCheckInterval) {
          client_checked = Clock::now();
          RL_ASSIGN(const auto clients, other_clients(rbd));
          if (!among(clients, now.client)) {
            return Error(Errc::failure, spec + ": " + now.client +
                                            ", which ran the reencryption, no longer has the image open; `rbd-luks "
                                            "reencrypt " +
                                            spec + "` finishes the run once no client has it open");
          }
        }
        break;
      case ReencryptRequest::State::done:
        progress.reset();
        inform(cl, "reencrypted " + spec + " online in " + now.client + ": " + now.message);
        return {};
      case ReencryptRequest::State::failed:
        progress.reset();
        return Error(error_kind(now.error),
                     spec + ": the online reencryption in " + now.client + " failed: " + now.message);
      case ReencryptRequest::State::stopped:
        progress.reset();
        return Error(Errc::failure, spec + ": the online reencryption in " + now.client + " stopped: " + now.message);
      case ReencryptRequest::State::withdrawn:
        return Error(Errc::failure, spec + ": the reencryption request was withdrawn");
    }
    if (started && stop_signalled()) {
      return Error(Errc::failure, spec + ": stopped following the reencryption; it goes on in " + now.client +
                                      ", and `rbd-luks reencrypt " + spec + " --online` follows it again");
    }
  }
}

}  // namespace rbdluks::cli
