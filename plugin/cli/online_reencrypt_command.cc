// `rbd-luks reencrypt TARGET --online`: a new volume key for an RBD image that another process
// serves, without stopping it. The command records a request in the image's metadata
// (reencrypt_request.h); the client that has the image open runs it in its own data path and
// writes back how it goes, and the command shows that progress until the run ends. It needs no
// key: the client re-wraps the keyslot that its own key opens.
#include <unistd.h>

#include <chrono>
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
    if (earlier && earlier->state == ReencryptRequest::State::running) {
      for (const RbdWatcher& w : clients) {
        if ("client." + std::to_string(w.client_id) == earlier->client) {
          inform(cl, "following the reencryption that " + earlier->client + " runs already");
          return std::move(*earlier);
        }
      }
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
  RL_TRY(image->set_metadata(kReencryptRequestKey, request.to_json()));
  RL_TRY(rbd_of(*image).close());
  return request;
}

// Removes a request that no client took, unless one took it meanwhile.
void withdraw(const CommandLine& cl, const Target& target, const ReencryptRequest& request) {
  auto image = open_target(cl, target, OpenMode::read_write);
  if (!image) return;
  const auto recorded = (*image)->get_metadata(kReencryptRequestKey);
  if (!recorded || !*recorded) return;
  const auto now = ReencryptRequest::parse(**recorded);
  if (now && now->id == request.id && now->state == ReencryptRequest::State::requested) {
    static_cast<void>((*image)->remove_metadata(kReencryptRequestKey));
  }
  static_cast<void>(rbd_of(**image).close());
}

}  // namespace

Status online_reencrypt(const CommandLine& cl, const std::string& spec) {
  RL_ASSIGN(const Target target, parse_target(spec));
  if (target.kind != Target::Kind::rbd || target.snapshot) {
    return Error(Errc::usage, spec + ": --online reencrypts an RBD image (rbd:POOL/IMAGE) that a client serves");
  }
  RL_ASSIGN(ReencryptRequest request, request_from(cl, target));
  RL_ASSIGN(request, submit(cl, target, std::move(request)));

  // Watched read-only: such an open does not count as a client of the image.
  RL_ASSIGN(auto image, open_target(cl, target, OpenMode::read_only));
  RbdImage& rbd = rbd_of(*image);
  const StopOnSignal signals;
  clear_stop_signal();
  const auto submitted = Clock::now();
  auto client_checked = Clock::now();
  std::optional<Progress> progress;
  const bool shown = !cl.has("quiet") && isatty(STDERR_FILENO) != 0;
  for (;; std::this_thread::sleep_for(kPollInterval)) {
    RL_ASSIGN(const auto value, image->get_metadata(kReencryptRequestKey));
    if (!value) return Error(Errc::failure, spec + ": the reencryption request was removed before it ended");
    RL_ASSIGN(const ReencryptRequest now, ReencryptRequest::parse(*value));
    if (now.id != request.id) {
      return Error(Errc::failure, spec + ": another reencryption request (" + now.id + ") replaced this one");
    }
    switch (now.state) {
      case ReencryptRequest::State::requested:
        if (Clock::now() - submitted >= kTakeTimeout) {
          withdraw(cl, target, request);
          RL_ASSIGN(const auto clients, other_clients(rbd));
          return Error(Errc::failure,
                       spec +
                           ": no client took the reencryption request within 30 s, so it is withdrawn; the "
                           "clients that have the image open (" +
                           clients_text(clients) +
                           ") do not run online reencryptions: images opened through the preload library do "
                           "(docs/clients.md)");
        }
        break;
      case ReencryptRequest::State::running:
        if (now.total_bytes != 0) {
          if (!progress) progress.emplace("reencrypt (in " + now.client + ")", now.total_bytes, shown);
          progress->update(now.done_bytes);
        }
        if (Clock::now() - client_checked >= kClientCheckInterval) {
          client_checked = Clock::now();
          RL_ASSIGN(const auto clients, other_clients(rbd));
          bool there = false;
          for (const RbdWatcher& w : clients) there = there || "client." + std::to_string(w.client_id) == now.client;
          if (!there) {
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
      case ReencryptRequest::State::stopped:
        progress.reset();
        return Error(Errc::failure, spec + ": the online reencryption in " + now.client + " " + state_name(now.state) +
                                        ": " + now.message);
    }
    if (stop_signalled()) {
      return Error(Errc::failure, spec + ": stopped following the reencryption; it goes on in " +
                                      (now.client.empty() ? std::string("the client") : now.client) +
                                      ", and `rbd-luks reencrypt " + spec + " --online` follows it again");
    }
  }
}

}  // namespace rbdluks::cli
