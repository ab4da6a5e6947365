// OpenStack settings: the [barbican] section of the config file, the OS_* environment on top of
// it, auth type selection, refusal of a world-readable file that holds a password, and the
// secret UUID of Barbican locators.
#include "openstack_settings.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace rbdluks {
namespace {

class OpenStackSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("rbd-luks-settings-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write_config(const std::string& content, mode_t mode = 0600) {
    const std::string path = (dir_ / "rbd-luks.conf").string();
    std::ofstream(path) << content;
    ::chmod(path.c_str(), mode);
    return path;
  }

  EnvironmentLookup environment() const {
    return [this](const char* name) -> const char* {
      auto it = env_.find(name);
      return it == env_.end() ? nullptr : it->second.c_str();
    };
  }

  static std::string text(const SecureBuffer& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

  std::filesystem::path dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(OpenStackSettingsTest, ReadsAnOpenrcEnvironment) {
  env_ = {{"OS_AUTH_URL", "http://k:5000/v3"},
          {"OS_USERNAME", "rbd"},
          {"OS_PASSWORD", "pw"},
          {"OS_PROJECT_NAME", "p"},
          {"OS_USER_DOMAIN_NAME", "D"},
          {"OS_PROJECT_DOMAIN_NAME", "E"},
          {"OS_REGION_NAME", "R1"},
          {"OS_INTERFACE", "internalURL"},
          {"OS_CACERT", "/ca.pem"},
          {"RBD_LUKS_BARBICAN_URL", "https://b:9311"}};
  auto s = load_openstack_settings(std::nullopt, environment());
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->credentials.auth_url, "http://k:5000/v3");
  EXPECT_EQ(s->credentials.username, "rbd");
  EXPECT_EQ(text(s->credentials.password), "pw");
  EXPECT_EQ(s->credentials.project_name, "p");
  EXPECT_EQ(s->credentials.user_domain_name, "D");
  EXPECT_EQ(s->credentials.project_domain_name, "E");
  EXPECT_EQ(s->barbican.region, "R1");
  EXPECT_EQ(s->barbican.interface, "internal");
  EXPECT_EQ(s->barbican.url, "https://b:9311");
  EXPECT_EQ(s->http.ca_file, "/ca.pem");
  EXPECT_TRUE(s->http.verify_tls);
  EXPECT_FALSE(s->http.allow_plain_http);  // refused by default
  EXPECT_FALSE(s->credentials.uses_application_credential());
}

TEST_F(OpenStackSettingsTest, ReadsTheBarbicanSectionAndTheEnvironmentOverridesIt) {
  const std::string path = write_config(
      "# comment\n[global]\nauth_url = http://ignored\n\n[barbican]\n auth_url = http://k/v3 \nusername = file-user\n"
      "password = p#w = x\nproject_id = 42\ninsecure = true\ninsecure_http = yes\ntimeout = 7\nconnect_timeout = 2\n"
      "retries = 0\n"
      "; another comment\n[other]\nfoo = bar\n");
  env_ = {{"OS_USERNAME", "env-user"}};
  auto s = load_openstack_settings(path, environment());
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->credentials.auth_url, "http://k/v3");
  EXPECT_EQ(s->credentials.username, "env-user");
  EXPECT_EQ(text(s->credentials.password), "p#w = x");
  EXPECT_EQ(s->credentials.project_id, "42");
  EXPECT_FALSE(s->http.verify_tls);
  EXPECT_TRUE(s->http.allow_plain_http);
  EXPECT_EQ(s->http.timeout, std::chrono::seconds(7));
  EXPECT_EQ(s->http.connect_timeout, std::chrono::seconds(2));
  EXPECT_EQ(s->http.attempts, 1u);
  EXPECT_NE(s->sources.find(path), std::string::npos);
}

TEST_F(OpenStackSettingsTest, FindsTheFileThroughRbdLuksConf) {
  const std::string path = write_config(
      "[barbican]\nauth_url = http://k/v3\napplication_credential_id = id1\n"
      "application_credential_secret = s3\n");
  env_ = {{"RBD_LUKS_CONF", path}};
  auto s = load_openstack_settings(std::nullopt, environment());
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_TRUE(s->credentials.uses_application_credential());
  EXPECT_EQ(s->credentials.application_credential_id, "id1");
  EXPECT_EQ(text(s->credentials.application_credential_secret), "s3");
}

TEST_F(OpenStackSettingsTest, RefusesAWorldReadableFileWithAPassword) {
  const std::string path = write_config(
      "[barbican]\nauth_url = http://k/v3\nusername = u\npassword = pw\n"
      "project_name = p\n",
      0644);
  auto s = load_openstack_settings(path, environment());
  ASSERT_FALSE(s);
  EXPECT_TRUE(s.error().is(Errc::key_unavailable));
  EXPECT_NE(s.error().message().find("readable by everyone"), std::string::npos) << s.error().message();
  EXPECT_EQ(s.error().message().find("pw"), std::string::npos);
  // Without secrets in it, a world-readable file is fine (the password comes from the environment).
  write_config("[barbican]\nauth_url = http://k/v3\nusername = u\nproject_name = p\n", 0644);
  env_ = {{"OS_PASSWORD", "pw"}};
  EXPECT_TRUE(load_openstack_settings(path, environment()));
}

TEST_F(OpenStackSettingsTest, AuthTypeChoosesBetweenPasswordAndApplicationCredential) {
  env_ = {{"OS_AUTH_URL", "http://k/v3"},
          {"OS_USERNAME", "u"},
          {"OS_PASSWORD", "pw"},
          {"OS_PROJECT_NAME", "p"},
          {"OS_APPLICATION_CREDENTIAL_ID", "ac"},
          {"OS_APPLICATION_CREDENTIAL_SECRET", "acs"}};
  auto both = load_openstack_settings(std::nullopt, environment());
  ASSERT_TRUE(both);
  EXPECT_TRUE(both->credentials.uses_application_credential());
  EXPECT_EQ(both->credentials.principal(), "application credential ac");
  env_["OS_AUTH_TYPE"] = "password";
  auto password = load_openstack_settings(std::nullopt, environment());
  ASSERT_TRUE(password);
  EXPECT_FALSE(password->credentials.uses_application_credential());
  EXPECT_EQ(password->credentials.principal(), "user u");
  env_["OS_AUTH_TYPE"] = "token";
  EXPECT_FALSE(load_openstack_settings(std::nullopt, environment()));
}

TEST_F(OpenStackSettingsTest, ReportsWhatIsMissingOrMalformed) {
  auto none = load_openstack_settings(std::nullopt, environment());
  ASSERT_FALSE(none);
  EXPECT_TRUE(none.error().is(Errc::key_unavailable));
  EXPECT_NE(none.error().message().find("OS_AUTH_URL"), std::string::npos) << none.error().message();

  env_ = {{"OS_AUTH_URL", "http://k/v3"}, {"OS_USERNAME", "u"}, {"OS_PROJECT_NAME", "p"}};
  auto no_password = load_openstack_settings(std::nullopt, environment());
  ASSERT_FALSE(no_password);
  EXPECT_NE(no_password.error().message().find("OS_PASSWORD"), std::string::npos) << no_password.error().message();

  env_ = {};
  for (const char* bad :
       {"[barbican]\nusername\n", "[barbican]\nuser_name = x\n", "[barbican\n", "[barbican]\ninsecure = maybe\n",
        "[barbican]\ninsecure_http = https\n", "[barbican]\ntimeout = 0\n", "[barbican]\ninterface = private\n"}) {
    const std::string path = write_config(bad);
    auto s = load_openstack_settings(path, environment());
    ASSERT_FALSE(s) << bad;
    EXPECT_NE(s.error().message().find("line "), std::string::npos) << s.error().message();
  }
  auto missing = load_openstack_settings((dir_ / "nonexistent.conf").string(), environment());
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("nonexistent.conf"), std::string::npos);
}

TEST(BarbicanLocatorTest, AcceptsUuidsAndSecretRefUrlsOnly) {
  const std::string uuid = "56fde816-8e58-4a73-ac7b-141d5467714c";
  EXPECT_EQ(*barbican_secret_uuid(uuid), uuid);
  EXPECT_EQ(*barbican_secret_uuid("http://127.0.0.1:9311/v1/secrets/" + uuid), uuid);
  EXPECT_EQ(*barbican_secret_uuid("https://kms.example/key-manager/v1/secrets/" + uuid + "/"), uuid);
  for (const std::string& bad : {std::string("not-a-uuid"), uuid + "/payload", std::string("../../v1/secrets"),
                                 "http://x/v1/secrets/" + uuid.substr(1), uuid.substr(0, 35) + "g"}) {
    auto got = barbican_secret_uuid(bad);
    ASSERT_FALSE(got) << bad;
    EXPECT_TRUE(got.error().is(Errc::key_unavailable));
  }
}

}  // namespace
}  // namespace rbdluks
