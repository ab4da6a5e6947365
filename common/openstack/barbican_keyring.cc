// BarbicanKeyring: the /v1/secrets API of Barbican through KeystoneAuth.
#include "barbican_keyring.h"

#include <cctype>

#include "base64.h"

namespace rbdluks {
namespace {

constexpr std::string_view kPayloadPlaceholder = "rbd-luks:payload-goes-here";

bool is_uuid(const std::string& text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !std::isxdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  return true;
}

class BarbicanKeyring final : public Keyring {
 public:
  BarbicanKeyring(std::shared_ptr<KeystoneAuth> auth, BarbicanEndpoint endpoint)
      : auth_(std::move(auth)), endpoint_(std::move(endpoint)) {}

  Result<SecureBuffer> fetch(const std::string& locator) override {
    RL_ASSIGN(const std::string uuid, barbican_secret_uuid(locator));
    const std::string where = "barbican:" + uuid;
    HttpRequest request;
    request.headers.push_back(http_header("Accept", "application/octet-stream"));
    auto response = send(std::move(request), "/secrets/" + uuid + "/payload");
    if (!response) return Error(response.error()).context(where);
    if (response->status != 200) return Error(Errc::key_unavailable, where + ": " + refusal(*response));
    if (response->body.empty()) return Error(Errc::key_unavailable, where + ": the secret's payload is empty");
    return std::move(response->body);
  }

  Result<KeyReference> store(std::span<const uint8_t> key, const std::string& name) override {
    const std::string where = "barbican: storing new secret '" + name + "'";
    if (key.empty()) return Error(Errc::key_unavailable, where + ": the key is empty");
    const nlohmann::json document = {
        {"name", name},
        {"secret_type", "symmetric"},
        {"algorithm", "aes"},
        {"bit_length", key.size() * 8},
        {"payload_content_type", "application/octet-stream"},
        {"payload_content_encoding", "base64"},
        {"payload", std::string(kPayloadPlaceholder)},
    };
    SecureBuffer payload(base64_size(key.size()));
    base64_encode(key, payload.span());
    HttpRequest request;
    request.method = "POST";
    request.idempotent = false;  // a repeated POST would leave a second, orphaned secret
    request.headers.push_back(http_header("Content-Type", "application/json"));
    request.headers.push_back(http_header("Accept", "application/json"));
    auto request_body = json_with_secret(document, kPayloadPlaceholder, payload.span());
    if (!request_body) return Error(Errc::key_unavailable, where + ": " + request_body.error().message());
    request.body = std::move(request_body).value();
    auto response = send(std::move(request), "/secrets");
    if (!response) return Error(response.error()).context(where);
    if (response->status != 201) return Error(Errc::key_unavailable, where + ": " + refusal(*response));
    const nlohmann::json body = nlohmann::json::parse(response->body.span().begin(), response->body.span().end(),
                                                      nullptr, /*allow_exceptions=*/false);
    const auto ref = body.is_object() ? body.find("secret_ref") : body.end();
    if (ref == body.end() || !ref->is_string()) {
      return Error(Errc::key_unavailable, where + ": Barbican's answer has no secret_ref");
    }
    RL_ASSIGN(const std::string uuid, barbican_secret_uuid(ref->get<std::string>()));
    return KeyReference{"barbican", uuid};
  }

  // Barbican mints a new UUID for every secret it stores and never changes a payload, so the secret
  // under a UUID that store() returned is always that store's: no need to compare.
  Status discard(const std::string& locator, std::span<const uint8_t> /*key*/) override {
    RL_ASSIGN(const std::string uuid, barbican_secret_uuid(locator));
    const std::string where = "barbican:" + uuid + ": delete";
    HttpRequest request;
    request.method = "DELETE";
    auto response = send(std::move(request), "/secrets/" + uuid);
    if (!response) return Error(response.error()).context(where);
    if (response->status != 204 && response->status != 200 && response->status != 404) {
      return Error(Errc::key_unavailable, where + ": " + refusal(*response));
    }
    return {};
  }

 private:
  // Barbican's API root ("https://barbican:9311/v1"), from the settings or the catalog.
  Result<std::string> api_root() {
    if (api_root_.empty()) {
      std::string url = endpoint_.url;
      if (url.empty()) {
        RL_ASSIGN(url, auth_->endpoint("key-manager", endpoint_.interface, endpoint_.region));
      }
      while (!url.empty() && url.back() == '/') url.pop_back();
      if (url.ends_with("/v1")) url.resize(url.size() - 3);
      api_root_ = url + "/v1";
    }
    return api_root_;
  }

  Result<HttpResponse> send(HttpRequest request, const std::string& path) {
    RL_ASSIGN(const std::string root, api_root());
    request.url = root + path;
    return auth_->send(std::move(request));
  }

  // Why Barbican said no, in a phrase.
  std::string refusal(const HttpResponse& response) const {
    const std::string status = "HTTP " + std::to_string(response.status);
    const std::string at = "Barbican at " + api_root_;
    switch (response.status) {
      case 400:
        return at + " rejected the request (" + status + ")";
      case 401:
        return at + " rejected the Keystone token of " + auth_->credentials().principal() + " (" + status +
               ", also after re-authenticating)";
      case 403:
        return "access denied (" + status + "): the secret belongs to another project, or " +
               auth_->credentials().principal() + " may not use it";
      case 404:
        return "no such secret at " + api_root_ + " (" + status + ")";
      case 406:
        return "the secret has no application/octet-stream payload (" + status + ")";
      default:
        break;
    }
    if (response.status >= 500) {
      return at + " failed (" + status + ", " + std::to_string(response.attempts) +
             (response.attempts == 1 ? " attempt)" : " attempts)");
    }
    return at + " answered " + status;
  }

  std::shared_ptr<KeystoneAuth> auth_;
  BarbicanEndpoint endpoint_;
  std::string api_root_;
};

}  // namespace

Result<std::string> barbican_secret_uuid(const std::string& locator) {
  std::string uuid = locator;
  if (const size_t at = locator.rfind("/secrets/"); at != std::string::npos) {
    uuid = locator.substr(at + 9);
    while (!uuid.empty() && uuid.back() == '/') uuid.pop_back();
  }
  if (!is_uuid(uuid)) {
    return Error(Errc::key_unavailable,
                 "barbican:" + locator + " names no secret: expected a secret UUID or a .../v1/secrets/UUID URL");
  }
  return uuid;
}

std::unique_ptr<Keyring> make_barbican_keyring(std::shared_ptr<KeystoneAuth> auth, BarbicanEndpoint endpoint) {
  return std::make_unique<BarbicanKeyring>(std::move(auth), std::move(endpoint));
}

}  // namespace rbdluks
