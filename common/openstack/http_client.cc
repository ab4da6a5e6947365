// HttpClient on libcurl's easy interface: one handle per attempt (no shared state, so any thread
// may call perform), bounded retries with doubling delays, bodies in growing SecureBuffers.
#include "http_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <thread>

namespace rbdluks {
namespace {

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool name_equals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

void ensure_curl_initialised() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The response body as it arrives, in locked memory that grows by doubling (old copies are zeroed
// when their SecureBuffer goes).
struct BodySink {
  SecureBuffer buffer;
  size_t used = 0;
  size_t limit = 0;
  bool too_large = false;
};

// libcurl callbacks must not throw (SecureBuffer throws std::bad_alloc): returning less than n
// aborts the transfer instead.
size_t on_body(char* data, size_t size, size_t count, void* user) noexcept {
  auto* sink = static_cast<BodySink*>(user);
  const size_t n = size * count;
  if (sink->used + n > sink->limit) {
    sink->too_large = true;
    return 0;
  }
  try {
    if (sink->used + n > sink->buffer.size()) {
      const size_t capacity = std::min(sink->limit, std::max({sink->buffer.size() * 2, sink->used + n, size_t{4096}}));
      SecureBuffer bigger(capacity);
      if (sink->used != 0) std::memcpy(bigger.data(), sink->buffer.data(), sink->used);
      sink->buffer = std::move(bigger);
    }
  } catch (const std::bad_alloc&) {
    return 0;
  }
  std::memcpy(sink->buffer.data() + sink->used, data, n);
  sink->used += n;
  return n;
}

size_t on_header(char* data, size_t size, size_t count, void* user) noexcept {
  auto* headers = static_cast<std::vector<HttpHeader>*>(user);
  const size_t n = size * count;
  std::string_view line(data, n);
  // A new status line (after a 100 Continue, say) starts a new set of headers.
  if (line.starts_with("HTTP/")) {
    headers->clear();
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
    value.remove_suffix(1);
  try {
    headers->push_back(HttpHeader{lowercase(line.substr(0, colon)), SecureBuffer::copy_of(value)});
  } catch (const std::bad_alloc&) {
    return 0;
  }
  return n;
}

// Request headers for libcurl, which copies each line; the copies are zeroed before they are freed.
class HeaderList {
 public:
  ~HeaderList() {
    for (curl_slist* item = list_; item != nullptr; item = item->next) secure_zero(item->data, std::strlen(item->data));
    curl_slist_free_all(list_);
  }
  void add(const HttpHeader& header) {
    SecureBuffer line(header.name.size() + 2 + header.value.size() + 1);
    std::memcpy(line.data(), header.name.data(), header.name.size());
    std::memcpy(line.data() + header.name.size(), ": ", 2);
    if (!header.value.empty())
      std::memcpy(line.data() + header.name.size() + 2, header.value.data(), header.value.size());
    add_line(reinterpret_cast<const char*>(line.data()));
  }
  void add_line(const char* line) { list_ = curl_slist_append(list_, line); }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

struct Attempt {
  Result<HttpResponse> response;
  bool transient = false;  // a failure that another attempt may not meet (network, timeout)
  bool connected = true;   // false: the server cannot have seen the request
};

struct CurlHandleDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};

struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};

// libcurl resolves "localhost" to the loopback addresses itself, without asking DNS.
bool is_loopback(const std::string& host) {
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  return host == "localhost" || host == "[::1]";
}

// Refuses plain http to anything but the loopback interface unless the options allow it. The URL is
// parsed as libcurl will parse it, so "http://127.0.0.1@elsewhere/" counts as elsewhere.
Status check_transport(const HttpOptions& options, const HttpRequest& request) {
  const std::string where = request.method + " " + request.url;
  std::unique_ptr<CURLU, CurlUrlDeleter> url(curl_url());
  if (!url || curl_url_set(url.get(), CURLUPART_URL, request.url.c_str(), 0) != CURLUE_OK) {
    return Error(Errc::failure, where + ": not a valid URL");
  }
  char* scheme = nullptr;
  char* host = nullptr;
  curl_url_get(url.get(), CURLUPART_SCHEME, &scheme, 0);
  curl_url_get(url.get(), CURLUPART_HOST, &host, 0);
  const bool plain = scheme != nullptr && std::string_view(scheme) == "http";
  const bool local = host != nullptr && is_loopback(lowercase(host));
  curl_free(scheme);
  curl_free(host);
  if (!plain || local || options.allow_plain_http) return {};
  return Error(Errc::failure, where + ": not sent: plain http would carry passwords, tokens and keys unencrypted " +
                                  "(use https, or set insecure_http = true in [barbican])");
}

Attempt perform_once(const HttpOptions& options, const HttpRequest& request) {
  std::unique_ptr<CURL, CurlHandleDeleter> curl(curl_easy_init());
  if (!curl) return {Error(Errc::failure, request.method + " " + request.url + ": cannot create a libcurl handle")};
  CURL* h = curl.get();
  char error_text[CURL_ERROR_SIZE] = {};
  HttpResponse response;
  BodySink body;
  body.limit = options.max_response_bytes;
  HeaderList headers;
  for (const HttpHeader& header : request.headers) headers.add(header);
  headers.add_line("Expect:");  // no 100-continue round trip for small bodies

  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "rbd-luks");
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_text);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout.count()));
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options.verify_tls ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options.verify_tls ? 2L : 0L);
  if (!options.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &response.headers);
  if (request.method == "POST") {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
  } else if (request.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  if (request.method == "POST" || !request.body.empty()) {
    // POSTFIELDS points at the caller's buffer: the body is not copied out of locked memory. (Never
    // null: libcurl would then read the body from standard input.)
    const char* body_data = request.body.empty() ? "" : reinterpret_cast<const char*>(request.body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body_data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  }

  const CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    const bool unconnected =
        rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY;
    const bool transient = unconnected || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_SEND_ERROR ||
                           rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE;
    std::string reason = body.too_large          ? "response larger than " + std::to_string(body.limit) + " bytes"
                         : error_text[0] != '\0' ? std::string(error_text)
                                                 : std::string(curl_easy_strerror(rc));
    return {Error(Errc::failure, request.method + " " + request.url + ": " + reason), transient, !unconnected};
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  body.buffer.shrink(body.used);
  response.body = std::move(body.buffer);
  return {std::move(response)};
}

}  // namespace

HttpHeader http_header(std::string name, std::string_view value) {
  return HttpHeader{std::move(name), SecureBuffer::copy_of(value)};
}

const SecureBuffer* HttpResponse::header(std::string_view name) const {
  for (const HttpHeader& h : headers) {
    if (name_equals(h.name, name)) return &h.value;
  }
  return nullptr;
}

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) { ensure_curl_initialised(); }

Result<HttpResponse> HttpClient::perform(const HttpRequest& request) const {
  RL_TRY(check_transport(options_, request));
  const unsigned attempts = std::max(options_.attempts, 1u);
  auto delay = options_.retry_delay;
  for (unsigned attempt = 1;; ++attempt) {
    Attempt result = perform_once(options_, request);
    const bool last = attempt == attempts;
    if (result.response) {
      if (result.response->status < 500 || !request.idempotent || last) {
        result.response->attempts = attempt;
        return std::move(result.response);
      }
    } else if (last || !result.transient || (result.connected && !request.idempotent)) {
      Error error = std::move(result.response).error();
      if (attempt > 1) return Error(Errc::failure, error.message() + " (" + std::to_string(attempt) + " attempts)");
      return error;
    }
    std::this_thread::sleep_for(delay);
    delay *= 2;
  }
}

Result<SecureBuffer> json_with_secret(const nlohmann::json& document, std::string_view placeholder,
                                      std::span<const uint8_t> secret) {
  std::string text;
  try {
    text = document.dump();
  } catch (const nlohmann::json::exception&) {
    return Error(Errc::failure, "request body: a setting is not valid UTF-8");
  }
  const std::string quoted = nlohmann::json(std::string(placeholder)).dump();
  const size_t at = text.find(quoted);
  if (at == std::string::npos || text.find(quoted, at + 1) != std::string::npos) {
    return Error(Errc::failure, "request body: the secret's placeholder must occur exactly once");
  }
  auto escaped_size = [](uint8_t c) -> size_t { return c == '"' || c == '\\' ? 2 : c < 0x20 ? 6 : 1; };
  size_t secret_size = 2;
  for (uint8_t c : secret) secret_size += escaped_size(c);
  SecureBuffer out(text.size() - quoted.size() + secret_size);
  uint8_t* p = out.data();
  p = std::copy(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), p);
  *p++ = '"';
  static constexpr char kHex[] = "0123456789abcdef";
  for (uint8_t c : secret) {
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = c;
    } else if (c < 0x20) {
      for (char e : {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]}) *p++ = static_cast<uint8_t>(e);
    } else {
      *p++ = c;
    }
  }
  *p++ = '"';
  std::copy(text.begin() + static_cast<std::ptrdiff_t>(at + quoted.size()), text.end(), p);
  return out;
}

}  // namespace rbdluks
