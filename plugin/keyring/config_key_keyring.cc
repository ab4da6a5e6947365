// ConfigKeyKeyring: "config-key get/exists/set/rm" mon commands.
//
// Ceph 16's config-key store has no "create unless it exists": `set` always overwrites. store()
// therefore asks `exists`, then `set`s, then `get`s the value back and compares it, which leaves a
// window of one monitor round trip (between the exists and the set answers) in which another
// client's set of the same key is overwritten; the read-back catches a writer that comes after our
// set and before our get. An `exists` that fails for any reason other than "no such key" stops
// store() (a client without that cap would otherwise overwrite blindly), and discard() removes a
// key only while it still holds this run's value.
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
    if (r < 0) return failure("get", key, r);
    if (value.empty()) return Error(Errc::key_unavailable, "config-key:" + key + " is empty");
    return value;
  }

  Result<KeyReference> store(std::span<const uint8_t> value, const std::string& key) override {
    RL_TRY(check_name(key));
    const int exists = command({{"prefix", "config-key exists"}, {"key", key}}, {}, nullptr);
    if (exists == 0) return Error(Errc::key_unavailable, "config-key:" + key + " already exists; not overwriting it");
    if (exists != -ENOENT) return failure("exists", key, exists);
    if (const int r = command({{"prefix", "config-key set"}, {"key", key}}, value, nullptr); r < 0) {
      return failure("set", key, r);
    }
    SecureBuffer stored;
    if (const int r = command({{"prefix", "config-key get"}, {"key", key}}, {}, &stored); r < 0) {
      // Unverified, so not provably ours: left for the operator rather than removed.
      return Error(Errc::key_unavailable, "config-key:" + key + " was set but could not be read back to check it (" +
                                              failure("get", key, r).message() + "); remove it if no volume uses it");
    }
    if (!stored.equals(value)) {
      return Error(Errc::key_unavailable,
                   "config-key:" + key + " was written by another client while this one created it; not using it");
    }
    return KeyReference{"config-key", key};
  }

  Status discard(const std::string& key, std::span<const uint8_t> value) override {
    RL_TRY(check_name(key));
    SecureBuffer stored;
    const int got = command({{"prefix", "config-key get"}, {"key", key}}, {}, &stored);
    if (got == -ENOENT) return {};
    if (got < 0) return failure("get", key, got);
    if (!stored.equals(value)) {
      return Error(Errc::key_unavailable, "config-key:" + key + " no longer holds the key stored in it; left in place");
    }
    const int r = command({{"prefix", "config-key rm"}, {"key", key}}, {}, nullptr);
    if (r < 0 && r != -ENOENT) return failure("rm", key, r);
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

  static Error failure(const char* command, const std::string& key, int r) {
    std::string reason = std::generic_category().message(-r);
    if (r == -EACCES || r == -EPERM) {
      reason += std::string(" (the client's mon caps do not allow config-key ") + command + " on this key)";
    }
    if (r == -ENOENT) reason = "no such key";
    return Error(Errc::key_unavailable, std::string("config-key ") + command + " of " + key + ": " + reason);
  }

  std::shared_ptr<RbdConnection> connection_;
};

}  // namespace

std::unique_ptr<Keyring> make_config_key_keyring(std::shared_ptr<RbdConnection> connection) {
  return std::make_unique<ConfigKeyKeyring>(std::move(connection));
}

}  // namespace rbdluks
