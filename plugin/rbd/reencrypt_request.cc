// ReencryptRequest: see reencrypt_request.h. Stored as JSON, one object.
#include "reencrypt_request.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <string_view>

#include "random.h"

namespace rbdluks {
namespace {

using State = ReencryptRequest::State;
// In the order of State's enumerators.
constexpr std::array kStateNames{"requested", "taken", "go", "running", "done", "failed", "stopped", "withdrawn"};
static_assert(kStateNames.size() == static_cast<size_t>(State::withdrawn) + 1);
constexpr std::array kErrorKinds{Errc::usage, Errc::bad_key, Errc::key_unavailable, Errc::bad_header};
constexpr std::array kErrorKindNames{"usage", "bad_key", "key_unavailable", "bad_header"};

}  // namespace

const char* state_name(ReencryptRequest::State state) { return kStateNames.at(static_cast<size_t>(state)); }

std::string error_kind_name(const Error& error) {
  for (size_t i = 0; i < kErrorKinds.size(); ++i) {
    if (error.is(kErrorKinds[i])) return kErrorKindNames[i];
  }
  return "failure";
}

Errc error_kind(const std::string& name) {
  for (size_t i = 0; i < kErrorKinds.size(); ++i) {
    if (name == kErrorKindNames[i]) return kErrorKinds[i];
  }
  return Errc::failure;
}

std::string ReencryptRequest::to_json() const {
  nlohmann::json j = {{"id", id},
                      {"state", state_name(state)},
                      {"hotzone_bytes", hotzone_bytes},
                      {"drop_unopened_keyslots", drop_unopened_keyslots},
                      {"client", client},
                      {"message", message},
                      {"error", error},
                      {"updated", updated},
                      {"done_bytes", done_bytes},
                      {"total_bytes", total_bytes}};
  if (cipher) j["cipher"] = *cipher;
  if (key_bytes) j["key_bytes"] = *key_bytes;
  return j.dump();
}

Result<ReencryptRequest> ReencryptRequest::parse(const std::string& value) {
  const auto j = nlohmann::json::parse(value, nullptr, false);
  const auto bad = [&](const std::string& why) {
    return Error(Errc::bad_header, std::string(kReencryptRequestKey) + " holds no request: " + why);
  };
  if (!j.is_object() || !j.contains("id") || !j["id"].is_string() || !j.contains("state") || !j["state"].is_string()) {
    return bad("no id and state");
  }
  ReencryptRequest out;
  try {
    out.id = j["id"].get<std::string>();
    const auto state = j["state"].get<std::string>();
    const auto* named = std::find(kStateNames.begin(), kStateNames.end(), std::string_view(state));
    if (named == kStateNames.end()) return bad("unknown state " + state);
    out.state = static_cast<State>(named - kStateNames.begin());
    out.hotzone_bytes = j.value("hotzone_bytes", uint64_t{0});
    out.drop_unopened_keyslots = j.value("drop_unopened_keyslots", false);
    out.client = j.value("client", std::string());
    out.message = j.value("message", std::string());
    out.error = j.value("error", std::string());
    out.updated = j.value("updated", int64_t{0});
    out.done_bytes = j.value("done_bytes", uint64_t{0});
    out.total_bytes = j.value("total_bytes", uint64_t{0});
    if (j.contains("cipher")) out.cipher = j["cipher"].get<std::string>();
    if (j.contains("key_bytes")) out.key_bytes = j["key_bytes"].get<uint32_t>();
  } catch (const nlohmann::json::exception& e) {
    return bad(e.what());
  }
  return out;
}

Result<ReencryptRequest> ReencryptRequest::create() {
  ReencryptRequest out;
  RL_ASSIGN(out.id, random_hex(8));
  return out;
}

}  // namespace rbdluks
