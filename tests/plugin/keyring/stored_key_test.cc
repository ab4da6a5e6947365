// Library clients open an image by the key reference its metadata records, with no secret at hand:
// rbdluks::Image::open_with_stored_key and rbd_luks_open_with_stored_key, with the key in config-key;
// and restrict which references they accept from that metadata, which any writer of the image controls.
#include <gtest/gtest.h>
#include <rbd/librbd.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "config_key_keyring.h"
#include "encrypted_rbd_fixture.h"
#include "keyring.h"
#include "rbd_luks/image.h"
#include "rbd_luks/librbd_luks.h"
#include "reencrypt_command_double.h"

namespace rbdluks {
namespace {

using namespace rbdluks::testing;

class StoredKeyTest : public EncryptedRbdFixture {
 protected:
  // Stores kPassphrase in config-key and records the reference in the image's metadata.
  void record_config_key(const std::string& name) {
    config_key_ = "rbd-luks/test/" + name;
    auto keyring = make_config_key_keyring(connection_);
    auto stored = keyring->store(bytes_of(kPassphrase), config_key_);
    ASSERT_TRUE(stored) << stored.error().message();
    set_metadata(name, kKeyRefMetadataKey, stored->str());
    set_metadata(name, kPassphraseEncodingMetadataKey, "raw");
  }

  void set_metadata(const std::string& name, const char* key, const std::string& value) {
    rbd_image_t image = nullptr;
    ASSERT_EQ(rbd_open(io(), name.c_str(), &image, nullptr), 0);
    EXPECT_EQ(rbd_metadata_set(image, key, value.c_str()), 0);
    rbd_close(image);
  }

  void TearDown() override {
    if (!config_key_.empty()) (void)make_config_key_keyring(connection_)->discard(config_key_, bytes_of(kPassphrase));
    EncryptedRbdFixture::TearDown();
  }

  std::string config_key_;
};

TEST_F(StoredKeyTest, CxxApiOpensWithTheRecordedReference) {
  const std::string name = create_luks_image(4 * kMiB);
  record_config_key(name);
  auto image = Image::open_with_stored_key(io(), name, {});
  ASSERT_TRUE(image) << image.error().message();
  const std::string data = "opened by reference";
  ASSERT_TRUE((*image)->write(4097, bytes_of(data)));
  std::string back(data.size(), '\0');
  ASSERT_TRUE((*image)->read(4097, std::span(reinterpret_cast<uint8_t*>(back.data()), back.size())));
  EXPECT_EQ(back, data);
}

TEST_F(StoredKeyTest, CApiOpensWithTheRecordedReference) {
  const std::string name = create_luks_image(4 * kMiB);
  record_config_key(name);
  rbd_luks_image_t image = nullptr;
  ASSERT_EQ(rbd_luks_open_with_stored_key(io(), name.c_str(), nullptr, 1, &image), 0) << rbd_luks_last_error();
  uint64_t size = 0;
  EXPECT_EQ(rbd_luks_get_size(image, &size), 0);
  EXPECT_EQ(size, 4 * kMiB);
  EXPECT_EQ(rbd_luks_write(image, 0, 1, "x", 0), -EROFS);
  EXPECT_EQ(rbd_luks_close(image), 0);
}

// A program on the C API follows reencryption requests on an image it opened with its stored key,
// which is fetched again from config-key when the request comes; an image opened with a passphrase
// cannot follow them, as the library keeps no passphrase.
TEST_F(StoredKeyTest, CApiFollowsReencryptRequestsWithTheStoredKey) {
  constexpr uint64_t kBytes = 8 * kMiB;
  const std::string name = create_luks_image(kBytes);
  record_config_key(name);
  const SecureBuffer old_key = header_volume_key(connection_, name);
  rbd_luks_image_t with_passphrase = nullptr;
  ASSERT_EQ(rbd_luks_open(io(), name.c_str(), nullptr, kPassphrase.data(), kPassphrase.size(), &with_passphrase), 0);
  EXPECT_EQ(rbd_luks_follow_reencrypt_requests(with_passphrase, 0), -EINVAL);
  EXPECT_NE(std::string(rbd_luks_last_error()).find("stored key"), std::string::npos) << rbd_luks_last_error();
  ASSERT_EQ(rbd_luks_close(with_passphrase), 0);

  rbd_luks_image_t image = nullptr;
  ASSERT_EQ(rbd_luks_open_with_stored_key(io(), name.c_str(), nullptr, 0, &image), 0) << rbd_luks_last_error();
  const std::vector<uint8_t> data = random_bytes(kBytes, 3);
  ASSERT_EQ(rbd_luks_write(image, 0, data.size(), reinterpret_cast<const char*>(data.data()), 0),
            static_cast<ssize_t>(kBytes));
  ASSERT_EQ(rbd_luks_follow_reencrypt_requests(image, 0), 0) << rbd_luks_last_error();
  ASSERT_EQ(rbd_luks_follow_reencrypt_requests(image, 0), 0) << "a second call changes nothing";

  ReencryptCommandDouble command(connection_, name);
  const std::string client = "client." + std::to_string(rados_get_instance_id(rados_ioctx_get_cluster(io())));
  // The key is fetched when the request comes, not kept from the open: with another passphrase in
  // config-key the run fails as one with a wrong key, and changes nothing.
  auto keyring = make_config_key_keyring(connection_);
  ASSERT_TRUE(keyring->discard(config_key_, bytes_of(kPassphrase)));
  const std::string wrong = "not the passphrase";
  ASSERT_TRUE(keyring->store(bytes_of(wrong), config_key_));
  auto refused = ReencryptRequest::create();
  ASSERT_TRUE(refused);
  ASSERT_NO_FATAL_FAILURE(command.request_and_confirm(*refused, client));
  const ReencryptRequest failed = command.record([](const ReencryptRequest& r) { return r.finished(); });
  EXPECT_EQ(failed.state, ReencryptRequest::State::failed) << failed.message;
  EXPECT_EQ(failed.error, "bad_key") << failed.message;
  EXPECT_TRUE(header_volume_key(connection_, name).equals(old_key.span())) << "a failed run changed the key";
  ASSERT_TRUE(keyring->discard(config_key_, bytes_of(wrong)));
  ASSERT_TRUE(keyring->store(bytes_of(kPassphrase), config_key_));

  auto request = ReencryptRequest::create();
  ASSERT_TRUE(request);
  request->hotzone_bytes = 1 * kMiB;
  ASSERT_NO_FATAL_FAILURE(command.request_and_confirm(*request, client));
  const ReencryptRequest finished = command.record([](const ReencryptRequest& r) { return r.finished(); });
  EXPECT_EQ(finished.id, request->id);
  EXPECT_EQ(finished.state, ReencryptRequest::State::done) << finished.message;
  EXPECT_EQ(finished.done_bytes, kBytes);

  std::vector<uint8_t> got(kBytes);
  ASSERT_EQ(rbd_luks_read(image, 0, got.size(), reinterpret_cast<char*>(got.data()), 0), static_cast<ssize_t>(kBytes));
  EXPECT_TRUE(got == data);
  ASSERT_EQ(rbd_luks_close(image), 0);
  EXPECT_FALSE(header_volume_key(connection_, name).equals(old_key.span())) << "the key did not change";
  // A new open takes the new key through the keyslot the stored key opens.
  ASSERT_EQ(rbd_luks_open_with_stored_key(io(), name.c_str(), nullptr, 1, &image), 0) << rbd_luks_last_error();
  std::fill(got.begin(), got.end(), 0);
  ASSERT_EQ(rbd_luks_read(image, 0, got.size(), reinterpret_cast<char*>(got.data()), 0), static_cast<ssize_t>(kBytes));
  EXPECT_TRUE(got == data);
  EXPECT_EQ(rbd_luks_follow_reencrypt_requests(image, 0), -EROFS);
  ASSERT_EQ(rbd_luks_close(image), 0);
}

TEST_F(StoredKeyTest, NoReferenceOrMissingKeyFailsClearly) {
  const std::string name = create_luks_image(4 * kMiB);
  auto none = Image::open_with_stored_key(io(), name, {});
  ASSERT_FALSE(none);
  EXPECT_TRUE(none.error().is(Errc::usage)) << none.error().message();
  EXPECT_NE(none.error().message().find("records no key reference"), std::string::npos);
  rbd_luks_image_t image = nullptr;
  EXPECT_EQ(rbd_luks_open_with_stored_key(io(), name.c_str(), nullptr, 0, &image), -ENOKEY);

  record_config_key(name);
  ASSERT_TRUE(make_config_key_keyring(connection_)->discard(config_key_, bytes_of(kPassphrase)));
  auto missing = Image::open_with_stored_key(io(), name, {});
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(Errc::key_unavailable)) << missing.error().message();
  EXPECT_NE(missing.error().message().find(config_key_), std::string::npos) << missing.error().message();
}

TEST_F(StoredKeyTest, AcceptsOnlyTheListedReferences) {
  const std::string name = create_luks_image(4 * kMiB);
  record_config_key(name);
  for (const char* accepted : {"config-key", "barbican, config-key", "file:/etc,config-key"}) {
    auto image = Image::open_with_stored_key(io(), name, {}, accepted);
    EXPECT_TRUE(image) << accepted << ": " << image.error().message();
    rbd_luks_image_t c_image = nullptr;
    ASSERT_EQ(rbd_luks_open_with_stored_key_accepting(io(), name.c_str(), nullptr, 1, accepted, &c_image), 0)
        << rbd_luks_last_error();
    rbd_luks_close(c_image);
  }
  for (const char* accepted : {"barbican", "file", "file:/etc/rbd-luks"}) {
    auto refused = Image::open_with_stored_key(io(), name, {}, accepted);
    ASSERT_FALSE(refused) << accepted;
    EXPECT_TRUE(refused.error().is(Errc::key_unavailable)) << refused.error().message();
    EXPECT_NE(refused.error().message().find("config-key:" + config_key_ + " in the metadata of " + name +
                                             " is not accepted"),
              std::string::npos)
        << refused.error().message();
    rbd_luks_image_t c_image = nullptr;
    EXPECT_EQ(rbd_luks_open_with_stored_key_accepting(io(), name.c_str(), nullptr, 0, accepted, &c_image), -ENOKEY);
    EXPECT_NE(std::string(rbd_luks_last_error()).find("is not accepted"), std::string::npos);
  }
  for (const char* malformed : {"", "vault", "config-key,", "file:relative"}) {
    auto refused = Image::open_with_stored_key(io(), name, {}, malformed);
    ASSERT_FALSE(refused) << malformed;
    EXPECT_TRUE(refused.error().is(Errc::usage)) << refused.error().message();
    rbd_luks_image_t c_image = nullptr;
    EXPECT_EQ(rbd_luks_open_with_stored_key_accepting(io(), name.c_str(), nullptr, 0, malformed, &c_image), -EINVAL);
  }
}

TEST_F(StoredKeyTest, AKeyFileOthersCanReadIsRefused) {
  const std::string name = create_luks_image(4 * kMiB);
  char dir_template[] = "/tmp/rbd-luks-stored-key.XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string path = std::string(dir_template) + "/vol.key";
  std::ofstream(path) << kPassphrase;
  set_metadata(name, kKeyRefMetadataKey, "file:" + path);
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  rbd_luks_image_t image = nullptr;
  EXPECT_EQ(rbd_luks_open_with_stored_key(io(), name.c_str(), nullptr, 1, &image), -ENOKEY);
  EXPECT_NE(std::string(rbd_luks_last_error()).find("key file:" + path + ": has mode 0644"), std::string::npos)
      << rbd_luks_last_error();
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  ASSERT_EQ(rbd_luks_open_with_stored_key(io(), name.c_str(), nullptr, 1, &image), 0) << rbd_luks_last_error();
  rbd_luks_close(image);
  std::remove(path.c_str());
  rmdir(dir_template);
}

}  // namespace
}  // namespace rbdluks
