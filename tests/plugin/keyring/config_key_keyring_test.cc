// ConfigKeyKeyring on the test cluster: store() never replaces an existing key and reads back what
// it wrote; discard() removes a key only while it holds what this store wrote. The "other client"
// is a plain `config-key set` mon command on a connection of its own.
#include "config_key_keyring.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "cluster_fixture.h"
#include "random.h"

namespace rbdluks {
namespace {

using namespace rbdluks::testing;

class ConfigKeyKeyringTest : public ClusterFixture {
 protected:
  void SetUp() override {
    ClusterFixture::SetUp();
    key_ = "rbd-luks/test/keyring-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  void TearDown() override { (void)mon_command("config-key rm", {}); }

  static SecureBuffer random_key() {
    SecureBuffer key(64);
    EXPECT_TRUE(fill_random(key.span()));
    return key;
  }

  // A mon command about key_ from a separate client, as another rbd-luks or an operator would send.
  int mon_command(const std::string& prefix, std::span<const uint8_t> in, std::string* out = nullptr) {
    auto other = RbdConnection::connect({});
    EXPECT_TRUE(other);
    const std::string cmd = R"({"prefix": ")" + prefix + R"(", "key": ")" + key_ + R"("})";
    const char* argv[] = {cmd.c_str()};
    char* outbuf = nullptr;
    size_t outlen = 0;
    const int r = rados_mon_command((*other)->handle(), argv, 1, reinterpret_cast<const char*>(in.data()), in.size(),
                                    &outbuf, &outlen, nullptr, nullptr);
    if (out != nullptr && r >= 0) out->assign(outbuf, outlen);
    rados_buffer_free(outbuf);
    return r;
  }

  std::string key_;
};

TEST_F(ConfigKeyKeyringTest, StoreNeverReplacesAnExistingKey) {
  const SecureBuffer theirs = random_key();
  ASSERT_EQ(mon_command("config-key set", theirs.span()), 0);
  const SecureBuffer mine = random_key();
  auto stored = make_config_key_keyring(connection_)->store(mine.span(), key_);
  ASSERT_FALSE(stored);
  EXPECT_TRUE(stored.error().is(Errc::key_unavailable));
  EXPECT_NE(stored.error().message().find("already exists; not overwriting it"), std::string::npos);
  std::string held;
  ASSERT_EQ(mon_command("config-key get", {}, &held), 0);
  EXPECT_TRUE(theirs.equals(std::span(reinterpret_cast<const uint8_t*>(held.data()), held.size())));
}

TEST_F(ConfigKeyKeyringTest, DiscardLeavesAKeyThatAnotherClientReplaced) {
  auto keyring = make_config_key_keyring(connection_);
  const SecureBuffer mine = random_key();
  auto stored = keyring->store(mine.span(), key_);
  ASSERT_TRUE(stored) << stored.error().message();
  EXPECT_TRUE(keyring->fetch(key_)->equals(mine.span()));

  const SecureBuffer theirs = random_key();
  ASSERT_EQ(mon_command("config-key set", theirs.span()), 0);
  auto discarded = keyring->discard(key_, mine.span());
  EXPECT_FALSE(discarded);
  EXPECT_NE(discarded.error().message().find("left in place"), std::string::npos) << discarded.error().message();
  EXPECT_TRUE(keyring->fetch(key_)->equals(theirs.span()));

  EXPECT_TRUE(keyring->discard(key_, theirs.span()));
  EXPECT_EQ(mon_command("config-key exists", {}), -ENOENT);
  EXPECT_TRUE(keyring->discard(key_, theirs.span())) << "a key that is gone is not an error";
}

}  // namespace
}  // namespace rbdluks
