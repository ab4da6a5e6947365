// HttpClient: the small HTTP(S) client (libcurl) that the OpenStack keyring talks to Keystone and
// Barbican with. Request and response bodies and header values live in SecureBuffer, since they
// carry passwords, tokens and keys; nothing here logs. TLS peers are verified unless the operator
// explicitly turns that off, and plain http is refused unless the operator allows it or the host is
// this machine's loopback interface. Redirects are not followed, so a token never goes to a host
// the operator did not configure.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "result.h"
#include "secure_buffer.h"

namespace rbdluks {

struct HttpHeader {
  std::string name;    // responses: lowercase
  SecureBuffer value;  // may be a credential (X-Auth-Token, X-Subject-Token)
};

HttpHeader http_header(std::string name, std::string_view value);

struct HttpRequest {
  std::string method = "GET";  // GET, POST, PUT or DELETE
  std::string url;
  std::vector<HttpHeader> headers;
  SecureBuffer body;
  // False for a request that must not be sent twice once the server may have seen it (creating a
  // secret): it is then retried only when no connection could be made.
  bool idempotent = true;
};

struct HttpResponse {
  long status = 0;
  std::vector<HttpHeader> headers;
  SecureBuffer body;
  unsigned attempts = 1;  // how often the request was sent (5xx answers are retried)

  // The value of header `name` (case-insensitive), or nullptr.
  const SecureBuffer* header(std::string_view name) const;
};

struct HttpOptions {
  std::string ca_file;  // PEM bundle to verify servers with; empty: the system's CA store
  bool verify_tls = true;
  // Plain http:// carries passwords, tokens and keys in clear, so it is refused (before any
  // connection) unless this is set, except to the loopback interface (localhost, 127.0.0.0/8, ::1),
  // where nothing crosses a network: a service on the same host, or a local TLS proxy.
  bool allow_plain_http = false;
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds timeout{30'000};  // the whole request, per attempt
  // Connection errors and 5xx answers are retried (see HttpRequest::idempotent), waiting
  // retry_delay, then twice as long, and so on.
  unsigned attempts = 3;
  std::chrono::milliseconds retry_delay{250};
  size_t max_response_bytes = 1 << 20;
};

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options);

  // The final response, whatever its status (callers decide what a 4xx or 5xx means), or
  // Errc::failure when no response came: "GET URL: Connection refused (3 attempts)", or when the
  // request was not sent because its URL is plain http that the options do not allow.
  Result<HttpResponse> perform(const HttpRequest& request) const;

  const HttpOptions& options() const { return options_; }

 private:
  HttpOptions options_;
};

// A JSON request body that carries one secret string: `document` holds `placeholder` (a string
// value) where the secret goes; the secret is JSON-escaped into the result, so it never passes
// through a std::string or nlohmann::json. The placeholder must occur exactly once.
Result<SecureBuffer> json_with_secret(const nlohmann::json& document, std::string_view placeholder,
                                      std::span<const uint8_t> secret);

}  // namespace rbdluks
