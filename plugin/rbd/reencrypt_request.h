// ReencryptRequest: an online reencryption asked for in an image's metadata, and how it went.
//
// `rbd-luks reencrypt TARGET --online` cannot run the reencryption itself while another process
// serves the image (that process would go on with the old key). It records a request under
// kReencryptRequestKey instead; setting metadata makes librbd notify every client that has the
// image open. The states, and who writes them:
//
//   requested (command) -> taken (a client that follows requests, naming itself)
//     -> go (command, for that client) -> running (client, with its progress)
//     -> done | failed | stopped (client, with a message)
//   withdrawn (command, instead of go: it timed out or was interrupted)
//
// A client runs a request only after the command has confirmed it with `go`, so a request whose
// command went away (killed, Ctrl-C) is never run by a client that opens the image later, and of
// two clients that take one, only the one the command names runs it. Metadata has no
// compare-and-set: each writer reads the record first and leaves one that is no longer its own
// alone. The record carries no secret: the client re-wraps the keyslot that its own key opens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "result.h"

namespace rbdluks {

inline constexpr const char* kReencryptRequestKey = "rbd-luks.reencrypt-request";

struct ReencryptRequest {
  enum class State { requested, taken, go, running, done, failed, stopped, withdrawn };

  std::string id;                       // random, so that a client runs each request once and the command knows its own
  std::optional<std::string> cipher;    // default: the volume's
  std::optional<uint32_t> key_bytes;    // default: the volume's
  uint64_t hotzone_bytes = 0;           // 0: the client's default
  bool drop_unopened_keyslots = false;  // --force
  State state = State::requested;
  std::string client;   // client.N that took it
  std::string message;  // what a failed or stopped run said, or what a finished one did
  std::string error;    // for a failed run: what kind of error (error_kind_name), for the exit code
  int64_t updated = 0;  // the command's wall clock (Unix seconds) when it last wrote the record
  uint64_t done_bytes = 0;
  uint64_t total_bytes = 0;

  std::string to_json() const;
  // Errc::bad_header when value is not a request this code wrote.
  static Result<ReencryptRequest> parse(const std::string& value);
  // A new request with a fresh id.
  static Result<ReencryptRequest> create();

  bool finished() const {
    return state == State::done || state == State::failed || state == State::stopped || state == State::withdrawn;
  }
};

const char* state_name(ReencryptRequest::State state);
// The Errc of a failed run as the record names it ("usage", "bad_key", "key_unavailable",
// "bad_header", "failure"), and back (anything else: Errc::failure).
std::string error_kind_name(const Error& error);
Errc error_kind(const std::string& name);

}  // namespace rbdluks
