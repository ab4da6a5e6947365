// The Barbican keyring against the real local Keystone and Barbican of the CTest fixtures
// "openstack" (1 h tokens) and "openstack_short" (3 s tokens): store, fetch and discard with
// password and application-credential auth; endpoint from the catalog or explicit; 403, 404, 401
// and unreachable services as Errc::key_unavailable without secrets in the message; and a token
// that expires between two fetches with the same keyring object, renewed ahead of time or, when the
// client's clock does not see it coming, after Barbican's 401.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include "barbican_keyring.h"
#include "base64.h"
#include "keystone_auth.h"
#include "random.h"
#include "test_support.h"

namespace rbdluks {
namespace {

nlohmann::json credentials_file(const char* dir_variable) {
  const char* dir = std::getenv(dir_variable);
  if (dir == nullptr) return nullptr;
  std::ifstream in(std::string(dir) + "/credentials");
  return nlohmann::json::parse(in, nullptr, false);
}

KeystoneCredentials password_credentials(const nlohmann::json& file, const std::string& user) {
  KeystoneCredentials c;
  c.auth_url = file["auth_url"];
  c.username = file["users"][user]["username"];
  c.password = SecureBuffer::copy_of(file["users"][user]["password"].get<std::string>());
  c.project_name = file["users"][user]["project"];
  c.user_domain_name = file["user_domain_name"];
  c.project_domain_name = file["project_domain_name"];
  return c;
}

KeystoneCredentials application_credentials(const nlohmann::json& file) {
  KeystoneCredentials c;
  c.auth_url = file["auth_url"];
  c.application_credential_id = file["application_credential"]["id"];
  c.application_credential_secret = SecureBuffer::copy_of(file["application_credential"]["secret"].get<std::string>());
  return c;
}

HttpOptions fast_retries() {
  HttpOptions options;
  options.retry_delay = std::chrono::milliseconds(10);
  return options;
}

BarbicanEndpoint endpoint(std::string url, std::string interface = "public", std::string region = "") {
  return BarbicanEndpoint{std::move(url), std::move(interface), std::move(region)};
}

std::shared_ptr<KeystoneAuth> auth_for(KeystoneCredentials credentials,
                                       KeystoneAuth::Clock clock = std::chrono::steady_clock::now) {
  return std::make_shared<KeystoneAuth>(std::move(credentials), std::make_shared<const HttpClient>(fast_retries()),
                                        std::move(clock));
}

SecureBuffer random_key(size_t size) {
  SecureBuffer key(size);
  EXPECT_TRUE(fill_random(key.span()));
  return key;
}

// A local port nobody listens on.
uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class BarbicanKeyringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = credentials_file("RBD_LUKS_OPENSTACK_DIR");
    RBDLUKS_SKIP_UNLESS(file_.is_object(), "RBD_LUKS_OPENSTACK_DIR names no running local OpenStack (run under ctest)");
  }

  // A message that names the secret and holds neither the key nor any password.
  void expect_clean_error(const Error& error, const std::string& uuid, const SecureBuffer& key,
                          const std::string& must_contain) {
    EXPECT_TRUE(error.is(Errc::key_unavailable)) << error.message();
    EXPECT_NE(error.message().find(uuid), std::string::npos) << error.message();
    EXPECT_NE(error.message().find(must_contain), std::string::npos) << error.message();
    EXPECT_EQ(error.message().find('\n'), std::string::npos);
    if (!key.empty()) {
      EXPECT_EQ(error.message().find(hex(key.span())), std::string::npos);
      EXPECT_EQ(error.message().find(base64_encode(key.span())), std::string::npos);
    }
    for (const auto& [name, user] : file_["users"].items()) {
      EXPECT_EQ(error.message().find(user["password"].get<std::string>()), std::string::npos) << name;
    }
    EXPECT_EQ(error.message().find(file_["application_credential"]["secret"].get<std::string>()), std::string::npos);
  }

  nlohmann::json file_;
};

TEST_F(BarbicanKeyringTest, StoresFetchesAndRemovesKeysWithTheirBitLength) {
  auto auth = auth_for(password_credentials(file_, "rbd-luks"));
  auto keyring = make_barbican_keyring(auth, {});
  for (size_t size : {64, 32}) {
    const SecureBuffer key = random_key(size);
    auto ref = keyring->store(key.span(), "rbd-luks test " + std::to_string(size));
    ASSERT_TRUE(ref) << ref.error().message();
    EXPECT_EQ(ref->scheme, "barbican");
    ASSERT_TRUE(barbican_secret_uuid(ref->locator));
    auto fetched = keyring->fetch(ref->locator);
    ASSERT_TRUE(fetched) << fetched.error().message();
    EXPECT_TRUE(fetched->equals(key.span()));

    // What Barbican recorded about it.
    HttpRequest meta;
    meta.url = file_["barbican_url"].get<std::string>() + "/v1/secrets/" + ref->locator;
    meta.headers.push_back(http_header("Accept", "application/json"));
    auto response = auth->send(std::move(meta));
    ASSERT_TRUE(response);
    ASSERT_EQ(response->status, 200);
    const auto secret = nlohmann::json::parse(response->body.span().begin(), response->body.span().end());
    EXPECT_EQ(secret["bit_length"], size * 8);
    EXPECT_EQ(secret["algorithm"], "aes");
    EXPECT_EQ(secret["secret_type"], "symmetric");
    EXPECT_EQ(secret["name"], "rbd-luks test " + std::to_string(size));
    EXPECT_EQ(secret["content_types"]["default"], "application/octet-stream");

    ASSERT_TRUE(keyring->discard(ref->locator, {}));
    auto gone = keyring->fetch(ref->locator);
    ASSERT_FALSE(gone);
    expect_clean_error(gone.error(), ref->locator, key, "HTTP 404");
    EXPECT_TRUE(keyring->discard(ref->locator, {})) << "discarding a deleted secret is not an error";
  }
  EXPECT_EQ(auth->authentications(), 1u) << "one token serves all requests while it is valid";
}

TEST_F(BarbicanKeyringTest, FindsBarbicanInTheCatalogOrAtAnExplicitUrlAndAcceptsSecretRefs) {
  auto auth = auth_for(password_credentials(file_, "rbd-luks"));
  const SecureBuffer key = random_key(64);
  auto ref = make_barbican_keyring(auth, {})->store(key.span(), "by url");
  ASSERT_TRUE(ref);
  const std::string barbican = file_["barbican_url"];
  auto explicit_url = make_barbican_keyring(auth, endpoint(barbican + "/v1/"));
  auto by_secret_ref = explicit_url->fetch(barbican + "/v1/secrets/" + ref->locator);
  ASSERT_TRUE(by_secret_ref) << by_secret_ref.error().message();
  EXPECT_TRUE(by_secret_ref->equals(key.span()));
  // The host of a secret_ref is ignored: the token only goes to the configured Barbican.
  auto foreign = explicit_url->fetch("http://198.51.100.7:9311/v1/secrets/" + ref->locator);
  ASSERT_TRUE(foreign) << foreign.error().message();
  // A region or interface the catalog does not have.
  auto no_region = make_barbican_keyring(auth, endpoint("", "public", "Atlantis"))->fetch(ref->locator);
  ASSERT_FALSE(no_region);
  expect_clean_error(no_region.error(), ref->locator, key, "no key-manager endpoint");
  auto internal = make_barbican_keyring(auth, endpoint("", "internal"))->fetch(ref->locator);
  ASSERT_FALSE(internal);
  EXPECT_TRUE(make_barbican_keyring(auth, {})->discard(ref->locator, {}));
}

TEST_F(BarbicanKeyringTest, ApplicationCredentialSeesTheProjectsSecrets) {
  auto by_password = make_barbican_keyring(auth_for(password_credentials(file_, "rbd-luks")), {});
  auto by_app_cred = make_barbican_keyring(auth_for(application_credentials(file_)), {});
  const SecureBuffer key = random_key(64);
  auto ref = by_password->store(key.span(), "shared");
  ASSERT_TRUE(ref);
  auto fetched = by_app_cred->fetch(ref->locator);
  ASSERT_TRUE(fetched) << fetched.error().message();
  EXPECT_TRUE(fetched->equals(key.span()));
  auto own = by_app_cred->store(key.span(), "by app cred");
  ASSERT_TRUE(own) << own.error().message();
  EXPECT_TRUE(by_password->fetch(own->locator));
  EXPECT_TRUE(by_app_cred->discard(own->locator, {}));
  EXPECT_TRUE(by_app_cred->discard(ref->locator, {}));
}

TEST_F(BarbicanKeyringTest, AnotherProjectsSecretIsForbidden) {
  auto mine = make_barbican_keyring(auth_for(password_credentials(file_, "rbd-luks")), {});
  const SecureBuffer key = random_key(64);
  auto ref = mine->store(key.span(), "private");
  ASSERT_TRUE(ref);
  auto theirs = make_barbican_keyring(auth_for(password_credentials(file_, "other")), {})->fetch(ref->locator);
  ASSERT_FALSE(theirs);
  expect_clean_error(theirs.error(), ref->locator, key, "HTTP 403");
  EXPECT_TRUE(mine->discard(ref->locator, {}));
}

TEST_F(BarbicanKeyringTest, WrongCredentialsAndUnreachableServicesFailCleanly) {
  const std::string uuid = "00000000-1111-2222-3333-444444444444";
  const SecureBuffer no_key;

  KeystoneCredentials wrong = password_credentials(file_, "rbd-luks");
  wrong.password = SecureBuffer::copy_of(std::string_view("not-the-password"));
  auto refused = make_barbican_keyring(auth_for(std::move(wrong)), {})->fetch(uuid);
  ASSERT_FALSE(refused);
  expect_clean_error(refused.error(), uuid, no_key, "HTTP 401");
  EXPECT_EQ(refused.error().message().find("not-the-password"), std::string::npos);

  KeystoneCredentials wrong_secret = application_credentials(file_);
  wrong_secret.application_credential_secret = SecureBuffer::copy_of(std::string_view("nope"));
  auto app_refused = make_barbican_keyring(auth_for(std::move(wrong_secret)), {})->fetch(uuid);
  ASSERT_FALSE(app_refused);
  expect_clean_error(app_refused.error(), uuid, no_key, "application credential");

  KeystoneCredentials no_keystone = password_credentials(file_, "rbd-luks");
  no_keystone.auth_url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/v3";
  auto unreachable = make_barbican_keyring(auth_for(std::move(no_keystone)), {})->fetch(uuid);
  ASSERT_FALSE(unreachable);
  expect_clean_error(unreachable.error(), uuid, no_key, "cannot reach Keystone");
  EXPECT_NE(unreachable.error().message().find("(3 attempts)"), std::string::npos) << unreachable.error().message();

  const std::string dead_barbican = "http://127.0.0.1:" + std::to_string(closed_port());
  auto no_barbican =
      make_barbican_keyring(auth_for(password_credentials(file_, "rbd-luks")), endpoint(dead_barbican))->fetch(uuid);
  ASSERT_FALSE(no_barbican);
  expect_clean_error(no_barbican.error(), uuid, no_key, dead_barbican);

  auto store_failed = make_barbican_keyring(auth_for(password_credentials(file_, "rbd-luks")), endpoint(dead_barbican))
                          ->store(random_key(64).span(), "never");
  ASSERT_FALSE(store_failed);
  EXPECT_TRUE(store_failed.error().is(Errc::key_unavailable));
}

class BarbicanTokenExpiryTest : public BarbicanKeyringTest {
 protected:
  void SetUp() override {
    file_ = credentials_file("RBD_LUKS_OPENSTACK_SHORT_DIR");
    RBDLUKS_SKIP_UNLESS(file_.is_object(), "RBD_LUKS_OPENSTACK_SHORT_DIR names no running local OpenStack");
    lifetime_ = std::chrono::seconds(file_["token_expiration"].get<int>());
    ASSERT_LE(lifetime_, std::chrono::seconds(10)) << "the short-token fixture should have short tokens";
  }
  std::chrono::seconds lifetime_{};
};

TEST_F(BarbicanTokenExpiryTest, RenewsTheTokenBeforeItExpires) {
  auto auth = auth_for(password_credentials(file_, "rbd-luks"));
  auto keyring = make_barbican_keyring(auth, {});
  const SecureBuffer key = random_key(64);
  auto ref = keyring->store(key.span(), "expiry");
  ASSERT_TRUE(ref) << ref.error().message();
  ASSERT_TRUE(keyring->fetch(ref->locator));
  const unsigned before = auth->authentications();
  std::this_thread::sleep_for(lifetime_ + std::chrono::milliseconds(500));
  auto fetched = keyring->fetch(ref->locator);
  ASSERT_TRUE(fetched) << fetched.error().message();
  EXPECT_TRUE(fetched->equals(key.span()));
  EXPECT_EQ(auth->authentications(), before + 1);
  EXPECT_TRUE(keyring->discard(ref->locator, {}));
}

TEST_F(BarbicanTokenExpiryTest, ReauthenticatesOnceWhenBarbicanRejectsAnExpiredToken) {
  // A clock that never moves: the client keeps using its token until Barbican answers 401.
  const auto frozen = std::chrono::steady_clock::now();
  auto auth = auth_for(password_credentials(file_, "rbd-luks"), [frozen] { return frozen; });
  auto keyring = make_barbican_keyring(auth, {});
  const SecureBuffer key = random_key(64);
  auto ref = keyring->store(key.span(), "expiry 401");
  ASSERT_TRUE(ref) << ref.error().message();
  EXPECT_EQ(auth->authentications(), 1u);
  std::this_thread::sleep_for(lifetime_ + std::chrono::milliseconds(500));
  auto fetched = keyring->fetch(ref->locator);
  ASSERT_TRUE(fetched) << fetched.error().message();
  EXPECT_TRUE(fetched->equals(key.span()));
  EXPECT_EQ(auth->authentications(), 2u) << "exactly one re-authentication, after the 401";
  EXPECT_TRUE(keyring->discard(ref->locator, {}));
}

}  // namespace
}  // namespace rbdluks
