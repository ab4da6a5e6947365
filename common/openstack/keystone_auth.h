// KeystoneAuth: project-scoped tokens from OpenStack Keystone (identity v3), by password or by
// application credential, and requests to other OpenStack services made with them.
//
// The token is cached until shortly before it expires; its lifetime is measured as Keystone states
// it (expires_at - issued_at) from when it was requested, so a skewed local clock does not matter.
// A service that still answers 401 (token revoked, or expired early) gets one new token and one
// retry. Every failure is Errc::key_unavailable; messages never hold the password, secret or token.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "http_client.h"
#include "result.h"
#include "secure_buffer.h"

namespace rbdluks {

struct KeystoneCredentials {
  std::string auth_url;  // e.g. http://keystone:5000/v3 ("/v3" is added when missing)

  // Password authentication: a user by ID, or by name in a domain (ID or name; default: the
  // domain with ID "default"); scoped to a project by ID, or by name in a domain.
  std::string user_id, username, user_domain_id, user_domain_name;
  SecureBuffer password;
  std::string project_id, project_name, project_domain_id, project_domain_name;

  // Application credential authentication (used when its secret is set): by ID, or by name with
  // the user above. The credential carries its own project scope.
  std::string application_credential_id, application_credential_name;
  SecureBuffer application_credential_secret;

  bool uses_application_credential() const { return !application_credential_secret.empty(); }
  // Who authenticates, for messages: "user rbd-luks", "application credential 8b45...".
  std::string principal() const;
  // Errc::key_unavailable naming what is missing, when the credentials cannot work.
  Status check() const;
};

class KeystoneAuth {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `clock` decides when a cached token counts as expired (tests substitute their own).
  KeystoneAuth(KeystoneCredentials credentials, std::shared_ptr<const HttpClient> http,
               Clock clock = std::chrono::steady_clock::now);

  // Sends `request` to a service with a valid token in X-Auth-Token; on 401, re-authenticates once
  // and sends it again. Any HTTP status is returned as a response; no response is
  // Errc::key_unavailable.
  Result<HttpResponse> send(HttpRequest request);

  // The URL of a service from the token's catalog: first endpoint of `service_type` with this
  // interface ("public", "internal", "admin") and, unless empty, this region.
  Result<std::string> endpoint(const std::string& service_type, const std::string& interface,
                               const std::string& region);

  // How many tokens were obtained so far.
  unsigned authentications() const;

  const KeystoneCredentials& credentials() const { return credentials_; }

 private:
  Status authenticate_locked();
  Status ensure_token_locked();

  KeystoneCredentials credentials_;
  std::shared_ptr<const HttpClient> http_;
  Clock clock_;
  mutable std::mutex mutex_;
  SecureBuffer token_;
  std::chrono::steady_clock::time_point renew_at_{};
  nlohmann::json catalog_;
  unsigned authentications_ = 0;
};

}  // namespace rbdluks
