// ConfigKeyKeyring: "config-key get/exists/set/rm" mon commands.
#include "config_key_keyring.h"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "printable_text.h"

namespace rbdluks {
namespace {

class ConfigKeyKeyring final : public Keyring {
 public:
  explicit ConfigKeyKeyring(std::shared_ptr<RbdConnection> connection) : connection_(std::move(connection)) {}

  Result<SecureBuffer> fetch(const std::string& key) override {
    RL_TRY(check_name(key));
    SecureBuffer value;
    const int r = command({{"prefix", "config-key get"}, {"key", key}}, {}, &value);
    if (r < 0) return failure("fetch", key, r);
    if (value.empty()) return Error(Errc::key_unavailable, "config-key:" + key + " is empty");
    return value;
  }

  Result<KeyReference> store(std::span<const uint8_t> value, const std::string& key) override {
    RL_TRY(check_name(key));
    if (command({{"prefix", "config-key exists"}, {"key", key}}, {}, nullptr) == 0) {
      return Error(Errc::key_unavailable, "config-key:" + key + " already exists; not overwriting it");
    }
    const int r = command({{"prefix", "config-key set"}, {"key", key}}, value, nullptr);
    if (r < 0) return failure("store", key, r);
    return KeyReference{"config-key", key};
  }

  Status remove(const std::string& key) override {
    RL_TRY(check_name(key));
    const int r = command({{"prefix", "config-key rm"}, {"key", key}}, {}, nullptr);
    if (r < 0 && r != -ENOENT) return failure("remove", key, r);
    return {};
  }

 private:
  // Mon commands are JSON, which holds only UTF-8 text; the name may come from image metadata.
  static Status check_name(const std::string& key) {
    if (is_valid_utf8(key)) return {};
    return Error(Errc::key_unavailable, "config-key:" + printable(key) + " is not a valid key name (not UTF-8)");
  }

  // Runs a mon command; the reply lands in *out (a SecureBuffer, since it may be a key).
  int command(const nlohmann::json& cmd, std::span<const uint8_t> in, SecureBuffer* out) {
    const std::string text = cmd.dump();
    const char* argv[] = {text.c_str()};
    char* outbuf = nullptr;
    size_t outlen = 0;
    char* outs = nullptr;
    size_t outslen = 0;
    const int r = rados_mon_command(connection_->handle(), argv, 1, reinterpret_cast<const char*>(in.data()), in.size(),
                                    &outbuf, &outlen, &outs, &outslen);
    if (out != nullptr && r >= 0) *out = SecureBuffer(reinterpret_cast<const uint8_t*>(outbuf), outlen);
    if (outbuf != nullptr) {
      secure_zero(outbuf, outlen);
      rados_buffer_free(outbuf);
    }
    if (outs != nullptr) rados_buffer_free(outs);
    return r;
  }

  static Error failure(const char* what, const std::string& key, int r) {
    std::string reason = std::generic_category().message(-r);
    if (r == -EACCES || r == -EPERM) reason += " (the client's mon caps do not allow config-key on this key)";
    if (r == -ENOENT) reason = "no such key";
    return Error(Errc::key_unavailable, std::string("config-key ") + what + " of " + key + ": " + reason);
  }

  std::shared_ptr<RbdConnection> connection_;
};

}  // namespace

std::unique_ptr<Keyring> make_config_key_keyring(std::shared_ptr<RbdConnection> connection) {
  return std::make_unique<ConfigKeyKeyring>(std::move(connection));
}

}  // namespace rbdluks
