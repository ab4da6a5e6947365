// KeystoneAuth: POST /v3/auth/tokens, the token cache and the catalog.
#include "keystone_auth.h"

#include <algorithm>
#include <ctime>
#include <iomanip>
#include <optional>
#include <sstream>

namespace rbdluks {
namespace {

constexpr std::string_view kSecretPlaceholder = "rbd-luks:secret-goes-here";
constexpr const char* kTokenHeader = "X-Auth-Token";

std::string identity_url(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (!url.ends_with("/v3")) url += "/v3";
  return url;
}

nlohmann::json domain(const std::string& id, const std::string& name) {
  if (!id.empty()) return {{"id", id}};
  if (!name.empty()) return {{"name", name}};
  return {{"id", "default"}};
}

nlohmann::json user(const KeystoneCredentials& c) {
  if (!c.user_id.empty()) return {{"id", c.user_id}};
  return {{"name", c.username}, {"domain", domain(c.user_domain_id, c.user_domain_name)}};
}

// The auth request, with the placeholder where the password or secret goes.
nlohmann::json auth_document(const KeystoneCredentials& c) {
  const std::string placeholder(kSecretPlaceholder);
  nlohmann::json identity;
  if (c.uses_application_credential()) {
    nlohmann::json credential = {{"secret", placeholder}};
    if (!c.application_credential_id.empty()) {
      credential["id"] = c.application_credential_id;
    } else {
      credential["name"] = c.application_credential_name;
      credential["user"] = user(c);
    }
    identity = {{"methods", {"application_credential"}}, {"application_credential", credential}};
    return {{"auth", {{"identity", identity}}}};
  }
  nlohmann::json password_user = user(c);
  password_user["password"] = placeholder;
  identity = {{"methods", {"password"}}, {"password", {{"user", password_user}}}};
  nlohmann::json project =
      !c.project_id.empty()
          ? nlohmann::json{{"id", c.project_id}}
          : nlohmann::json{{"name", c.project_name}, {"domain", domain(c.project_domain_id, c.project_domain_name)}};
  return {{"auth", {{"identity", identity}, {"scope", {{"project", project}}}}}};
}

// Seconds since the epoch of Keystone's "2026-11-22T01:52:34.000000Z".
std::optional<double> parse_time(const nlohmann::json& value) {
  if (!value.is_string()) return std::nullopt;
  std::tm tm{};
  double seconds = 0;
  std::istringstream in(value.get<std::string>());
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:") >> seconds;
  if (in.fail()) return std::nullopt;
  return static_cast<double>(timegm(&tm)) + seconds;
}

// How long a token stays usable from when it was requested: its stated lifetime, less a margin for
// the request in flight and for Keystone rounding issued_at down to the second.
std::chrono::steady_clock::duration usable_for(const nlohmann::json& token) {
  using namespace std::chrono;
  const auto expires = parse_time(token.value("expires_at", nlohmann::json()));
  const auto issued = parse_time(token.value("issued_at", nlohmann::json()));
  double lifetime = 0;
  if (expires && issued) {
    lifetime = *expires - *issued;
  } else if (expires) {
    lifetime = *expires - static_cast<double>(std::time(nullptr));
  }
  const double margin = std::min(60.0, lifetime / 4) + 1.0;
  return duration_cast<steady_clock::duration>(duration<double>(std::max(0.0, lifetime - margin)));
}

}  // namespace

std::string KeystoneCredentials::principal() const {
  if (uses_application_credential()) {
    return "application credential " +
           (!application_credential_id.empty() ? application_credential_id : application_credential_name);
  }
  return "user " + (!username.empty() ? username : user_id);
}

Status KeystoneCredentials::check() const {
  auto missing = [](const std::string& what) {
    return Error(Errc::key_unavailable, "incomplete OpenStack credentials: " + what);
  };
  if (auth_url.empty()) return missing("no auth URL (OS_AUTH_URL or auth_url)");
  if (uses_application_credential()) {
    if (!application_credential_id.empty()) return {};
    if (application_credential_name.empty()) {
      return missing("an application credential secret needs its ID (OS_APPLICATION_CREDENTIAL_ID) or name");
    }
    if (user_id.empty() && username.empty()) return missing("an application credential by name needs its user");
    return {};
  }
  if (user_id.empty() && username.empty()) {
    return missing("no user (OS_USERNAME) and no application credential (OS_APPLICATION_CREDENTIAL_ID/SECRET)");
  }
  if (password.empty()) return missing("no password for " + principal() + " (OS_PASSWORD or password)");
  if (project_id.empty() && project_name.empty()) return missing("no project (OS_PROJECT_NAME or OS_PROJECT_ID)");
  return {};
}

KeystoneAuth::KeystoneAuth(KeystoneCredentials credentials, std::shared_ptr<const HttpClient> http, Clock clock)
    : credentials_(std::move(credentials)), http_(std::move(http)), clock_(std::move(clock)) {
  credentials_.auth_url = identity_url(credentials_.auth_url);
}

Status KeystoneAuth::authenticate_locked() {
  RL_TRY(credentials_.check());
  const SecureBuffer& secret =
      credentials_.uses_application_credential() ? credentials_.application_credential_secret : credentials_.password;
  HttpRequest request;
  request.method = "POST";
  request.url = credentials_.auth_url + "/auth/tokens";
  request.headers.push_back(http_header("Content-Type", "application/json"));
  request.headers.push_back(http_header("Accept", "application/json"));
  auto request_body = json_with_secret(auth_document(credentials_), kSecretPlaceholder, secret.span());
  if (!request_body) {
    return Error(Errc::key_unavailable,
                 "token request of " + credentials_.principal() + ": " + request_body.error().message());
  }
  request.body = std::move(request_body).value();
  request.idempotent = true;  // a second token request does no harm

  const auto started = clock_();
  auto response = http_->perform(request);
  const std::string where = "Keystone at " + credentials_.auth_url;
  if (!response) return Error(Errc::key_unavailable, "cannot reach " + where + ": " + response.error().message());
  const long status = response->status;
  if (status == 401) {
    return Error(Errc::key_unavailable, where + " rejected the credentials of " + credentials_.principal() +
                                            " (HTTP 401: wrong password or secret, or no access to the project)");
  }
  if (status != 201 && status != 200) {
    return Error(Errc::key_unavailable, where + " answered HTTP " + std::to_string(status) +
                                            " to the token request of " + credentials_.principal());
  }
  const SecureBuffer* token = response->header("X-Subject-Token");
  if (token == nullptr || token->empty()) return Error(Errc::key_unavailable, where + " sent no X-Subject-Token");
  nlohmann::json body = nlohmann::json::parse(response->body.span().begin(), response->body.span().end(), nullptr,
                                              /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("token") || !body["token"].is_object()) {
    return Error(Errc::key_unavailable, where + " sent a token response that is not the identity v3 JSON");
  }
  token_ = SecureBuffer::copy_of(token->span());
  renew_at_ = started + usable_for(body["token"]);
  catalog_ = body["token"].value("catalog", nlohmann::json::array());
  ++authentications_;
  return {};
}

Status KeystoneAuth::ensure_token_locked() {
  if (!token_.empty() && clock_() < renew_at_) return {};
  token_ = SecureBuffer();
  return authenticate_locked();
}

Result<HttpResponse> KeystoneAuth::send(HttpRequest request) {
  std::erase_if(request.headers, [](const HttpHeader& h) { return h.name == kTokenHeader; });
  for (int round = 0;; ++round) {
    {
      std::lock_guard lock(mutex_);
      if (round == 1) token_ = SecureBuffer();
      RL_TRY(ensure_token_locked());
      if (round == 1) request.headers.pop_back();
      request.headers.push_back(HttpHeader{kTokenHeader, SecureBuffer::copy_of(token_.span())});
    }
    auto response = http_->perform(request);
    if (!response) return Error(Errc::key_unavailable, "no answer to " + response.error().message());
    if (response->status != 401 || round == 1) return response;
  }
}

Result<std::string> KeystoneAuth::endpoint(const std::string& service_type, const std::string& interface,
                                           const std::string& region) {
  std::lock_guard lock(mutex_);
  RL_TRY(ensure_token_locked());
  try {
    for (const auto& service : catalog_) {
      if (!service.is_object() || service.value("type", "") != service_type || !service.contains("endpoints")) continue;
      for (const auto& ep : service.at("endpoints")) {
        if (!ep.is_object() || ep.value("interface", "") != interface) continue;
        if (!region.empty() && ep.value("region_id", "") != region && ep.value("region", "") != region) continue;
        const std::string url = ep.value("url", "");
        if (!url.empty()) return url;
      }
    }
  } catch (const nlohmann::json::exception&) {
    return Error(Errc::key_unavailable,
                 "the service catalog from Keystone at " + credentials_.auth_url + " is malformed");
  }
  return Error(Errc::key_unavailable, "the service catalog of " + credentials_.principal() + " has no " + service_type +
                                          " endpoint with interface " + interface +
                                          (region.empty() ? "" : " in region " + region));
}

unsigned KeystoneAuth::authentications() const {
  std::lock_guard lock(mutex_);
  return authentications_;
}

}  // namespace rbdluks
