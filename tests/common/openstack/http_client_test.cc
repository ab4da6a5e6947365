// HttpClient against a scripted HTTP server in the test process: what is sent and received,
// which failures are retried (5xx and connection errors for idempotent requests only), timeouts,
// the response size limit, no redirects, plain http only to loopback unless allowed; and
// json_with_secret's escaping.
#include "http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace rbdluks {
namespace {

// Answers each connection with the next scripted response (the last one repeats) and records the
// requests. An empty response means: accept, read, never answer.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::string> responses) : responses_(std::move(responses)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    EXPECT_EQ(::listen(fd_, 8), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }

  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void serve() {
    for (size_t n = 0; !stop_; ++n) {
      const int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      std::string request = read_request(conn);
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(request);
      }
      const std::string& response = responses_[std::min(n, responses_.size() - 1)];
      if (response.empty()) {
        while (!stop_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      } else {
        (void)!::write(conn, response.data(), response.size());
      }
      ::close(conn);
    }
  }

  static std::string read_request(int conn) {
    std::string data;
    char buf[4096];
    size_t need = std::string::npos;
    while (need == std::string::npos || data.size() < need) {
      const ssize_t n = ::read(conn, buf, sizeof buf);
      if (n <= 0) break;
      data.append(buf, static_cast<size_t>(n));
      const size_t end = data.find("\r\n\r\n");
      if (need == std::string::npos && end != std::string::npos) {
        size_t length = 0;
        const size_t at = data.find("Content-Length: ");
        if (at != std::string::npos && at < end) length = std::stoul(data.substr(at + 16));
        need = end + 4 + length;
      }
    }
    return data;
  }

  std::vector<std::string> responses_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::string> requests_;
};

std::string response(int status, const std::string& body, const std::string& extra_headers = "") {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n" + extra_headers + "\r\n" + body;
}

HttpOptions fast_options() {
  HttpOptions options;
  options.retry_delay = std::chrono::milliseconds(1);
  options.timeout = std::chrono::milliseconds(2000);
  return options;
}

std::string text(const SecureBuffer& buffer) { return {reinterpret_cast<const char*>(buffer.data()), buffer.size()}; }

TEST(HttpClientTest, SendsHeadersAndReadsStatusHeadersAndBody) {
  ScriptedServer server({response(200, "payload\x01\x02", "X-Subject-Token: tok123\r\n")});
  HttpRequest request;
  request.url = server.url("/v1/secrets/x/payload");
  request.headers.push_back(http_header("X-Auth-Token", "abc"));
  auto got = HttpClient(fast_options()).perform(request);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(text(got->body), std::string("payload\x01\x02"));
  ASSERT_NE(got->header("x-subject-TOKEN"), nullptr);
  EXPECT_EQ(text(*got->header("X-Subject-Token")), "tok123");
  ASSERT_NE(got->header("Content-Length"), nullptr);
  EXPECT_EQ(text(*got->header("content-length")), "9");
  EXPECT_EQ(got->header("absent"), nullptr);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].rfind("GET /v1/secrets/x/payload HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(requests[0].find("\r\nX-Auth-Token: abc\r\n"), std::string::npos);
}

TEST(HttpClientTest, PostsTheBodyExactlyAndDeleteUsesItsMethod) {
  ScriptedServer server({response(201, "{}"), response(204, "")});
  HttpRequest post;
  post.method = "POST";
  post.url = server.url("/v1/secrets");
  post.body = SecureBuffer::copy_of(std::string_view("{\"a\":\"\\u0000x\"}"));
  ASSERT_EQ(HttpClient(fast_options()).perform(post)->status, 201);
  HttpRequest del;
  del.method = "DELETE";
  del.url = server.url("/v1/secrets/u");
  ASSERT_EQ(HttpClient(fast_options()).perform(del)->status, 204);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].rfind("POST /v1/secrets ", 0), 0u);
  EXPECT_NE(requests[0].find("Content-Length: 15\r\n"), std::string::npos);
  EXPECT_EQ(requests[0].substr(requests[0].size() - 15), "{\"a\":\"\\u0000x\"}");
  EXPECT_EQ(requests[0].find("Expect:"), std::string::npos);
  EXPECT_EQ(requests[1].rfind("DELETE /v1/secrets/u ", 0), 0u);
}

TEST(HttpClientTest, RetriesServerErrorsOfIdempotentRequests) {
  ScriptedServer server({response(503, "busy"), response(502, "busy"), response(200, "ok")});
  HttpRequest request;
  request.url = server.url("/x");
  auto got = HttpClient(fast_options()).perform(request);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->attempts, 3u);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(HttpClientTest, GivesUpAfterTheLastAttemptWithTheServerError) {
  ScriptedServer server({response(500, "broken")});
  HttpRequest request;
  request.url = server.url("/x");
  auto got = HttpClient(fast_options()).perform(request);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 500);
  EXPECT_EQ(got->attempts, 3u);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(HttpClientTest, NeverRetriesClientErrorsNorNonIdempotentRequests) {
  ScriptedServer server({response(404, "no"), response(503, "busy"), response(200, "late")});
  HttpRequest get;
  get.url = server.url("/x");
  EXPECT_EQ(HttpClient(fast_options()).perform(get)->status, 404);
  HttpRequest post;
  post.method = "POST";
  post.idempotent = false;
  post.url = server.url("/x");
  auto got = HttpClient(fast_options()).perform(post);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 503);
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST(HttpClientTest, ConnectionRefusedIsRetriedAndReported) {
  uint16_t port = 0;
  {
    ScriptedServer closed({response(200, "")});
    port = static_cast<uint16_t>(std::stoi(closed.url("").substr(17)));
  }
  HttpRequest request;
  request.method = "POST";
  request.idempotent = false;  // never connected, so even a POST is retried
  request.url = "http://127.0.0.1:" + std::to_string(port) + "/v3/auth/tokens";
  auto got = HttpClient(fast_options()).perform(request);
  ASSERT_FALSE(got);
  const std::string& message = got.error().message();
  EXPECT_NE(message.find("POST " + request.url + ": "), std::string::npos) << message;
  EXPECT_NE(message.find("(3 attempts)"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(HttpClientTest, ATotalTimeoutEndsAHangingRequest) {
  ScriptedServer server({""});
  HttpOptions options = fast_options();
  options.timeout = std::chrono::milliseconds(300);
  options.attempts = 1;
  HttpRequest request;
  request.url = server.url("/slow");
  const auto start = std::chrono::steady_clock::now();
  auto got = HttpClient(options).perform(request);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("imed out"), std::string::npos) << got.error().message();
  EXPECT_LT(elapsed, std::chrono::seconds(3));
}

TEST(HttpClientTest, RefusesOversizedResponsesAndDoesNotFollowRedirects) {
  ScriptedServer server({response(200, std::string(5000, 'x')), response(302, "", "Location: http://elsewhere/\r\n")});
  HttpOptions options = fast_options();
  options.max_response_bytes = 4096;
  HttpRequest request;
  request.url = server.url("/big");
  auto big = HttpClient(options).perform(request);
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message().find("larger than 4096 bytes"), std::string::npos) << big.error().message();
  request.url = server.url("/moved");
  auto moved = HttpClient(options).perform(request);
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->status, 302);
  EXPECT_EQ(server.requests().size(), 2u);  // an oversized answer is not retried
}

TEST(HttpClientTest, RejectsOtherProtocols) {
  HttpRequest request;
  request.url = "file:///etc/passwd";
  auto got = HttpClient(fast_options()).perform(request);
  ASSERT_FALSE(got);
}

TEST(HttpClientTest, RefusesPlainHttpBeyondLoopbackUnlessAllowed) {
  // .invalid never resolves (RFC 6761): a refused request fails before any lookup, an allowed one at
  // the lookup, so neither needs a network.
  for (const std::string url : {"http://barbican.invalid:9311/v1/secrets", "HTTP://barbican.invalid/",
                                "http://127.0.0.1@barbican.invalid/", "http://127.example.invalid/"}) {
    HttpRequest request;
    request.url = url;
    auto refused = HttpClient(fast_options()).perform(request);
    ASSERT_FALSE(refused) << url;
    EXPECT_NE(refused.error().message().find("not sent: plain http"), std::string::npos) << refused.error().message();
    EXPECT_NE(refused.error().message().find("insecure_http"), std::string::npos) << refused.error().message();

    HttpOptions allowed = fast_options();
    allowed.allow_plain_http = true;
    allowed.attempts = 1;
    auto attempted = HttpClient(allowed).perform(request);
    ASSERT_FALSE(attempted) << url;
    EXPECT_EQ(attempted.error().message().find("not sent"), std::string::npos) << attempted.error().message();
    EXPECT_NE(attempted.error().message().find("resolve"), std::string::npos) << attempted.error().message();
  }
  // The loopback interface (the scripted server) and https are fine by default.
  ScriptedServer server({response(200, "ok")});
  HttpRequest local;
  const std::string port = server.url("").substr(17);
  for (const std::string& url : {server.url("/x"), "http://localhost:" + port + "/x", "http://127.0.0.1:" + port}) {
    local.url = url;
    auto got = HttpClient(fast_options()).perform(local);
    ASSERT_TRUE(got) << url << ": " << got.error().message();
    EXPECT_EQ(got->status, 200);
  }
  HttpRequest tls;
  tls.url = "https://barbican.invalid/";
  HttpOptions once = fast_options();
  once.attempts = 1;
  auto attempted = HttpClient(once).perform(tls);
  ASSERT_FALSE(attempted);
  EXPECT_NE(attempted.error().message().find("resolve"), std::string::npos) << attempted.error().message();
}

TEST(JsonWithSecretTest, EscapesTheSecretIntoItsPlace) {
  const nlohmann::json document = {{"user", "u"}, {"password", "PLACEHOLDER"}, {"n", 1}};
  const std::string secret = std::string("a\"b\\c\n\x01") + "\xc3\xa9";
  auto body =
      json_with_secret(document, "PLACEHOLDER", {reinterpret_cast<const uint8_t*>(secret.data()), secret.size()});
  ASSERT_TRUE(body);
  const std::string out = text(*body);
  EXPECT_EQ(out.find("PLACEHOLDER"), std::string::npos);
  const auto parsed = nlohmann::json::parse(out);
  EXPECT_EQ(parsed["password"].get<std::string>(), secret);
  EXPECT_EQ(parsed["user"], "u");
  EXPECT_EQ(parsed["n"], 1);
}

TEST(JsonWithSecretTest, RequiresExactlyOnePlaceholderAndValidText) {
  const uint8_t secret[] = {'s'};
  EXPECT_FALSE(json_with_secret({{"a", "b"}}, "P", secret));
  EXPECT_FALSE(json_with_secret({{"a", "P"}, {"b", "P"}}, "P", secret));
  EXPECT_FALSE(json_with_secret({{"a", "P"}, {"user", "\xff\xfe"}}, "P", secret));
}

}  // namespace
}  // namespace rbdluks
