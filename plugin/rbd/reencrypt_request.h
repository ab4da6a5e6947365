// ReencryptRequest: an online reencryption asked for in an image's metadata, and how it went.
//
// `rbd-luks reencrypt TARGET --online` cannot run the reencryption itself while another process
// serves the image (that process would go on with the old key). It records a request under
// kReencryptRequestKey instead; setting metadata makes librbd notify every client that has the
// image open. A client that follows requests (Image::follow_reencrypt_requests; the preload
// library's images do) runs it in its own data path (EncryptedRbdImage::reencrypt) and writes the
// request back as it goes: running with its progress, then done, failed or stopped, with a message.
// The command follows those states. The record carries no secret: the client re-wraps the keyslot
// that its own key opens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "result.h"

namespace rbdluks {

inline constexpr const char* kReencryptRequestKey = "rbd-luks.reencrypt-request";

struct ReencryptRequest {
  enum class State { requested, running, done, failed, stopped };

  std::string id;                       // random, so that a client runs each request once and the command knows its own
  std::optional<std::string> cipher;    // default: the volume's
  std::optional<uint32_t> key_bytes;    // default: the volume's
  uint64_t hotzone_bytes = 0;           // 0: the client's default
  bool drop_unopened_keyslots = false;  // --force
  State state = State::requested;
  std::string client;   // client.N that took it
  std::string message;  // what a failed or stopped run said, or what a finished one did
  uint64_t done_bytes = 0;
  uint64_t total_bytes = 0;

  std::string to_json() const;
  // Errc::bad_header when value is not a request this code wrote.
  static Result<ReencryptRequest> parse(const std::string& value);
  // A new request with a fresh id.
  static Result<ReencryptRequest> create();

  bool finished() const { return state == State::done || state == State::failed || state == State::stopped; }
};

const char* state_name(ReencryptRequest::State state);

}  // namespace rbdluks
