// The keyring adapters rbd-luks knows, by scheme.
#include "keyring_registry.h"

#include <map>
#include <vector>

#include "barbican_keyring.h"
#include "config_key_keyring.h"
#include "file_keyring.h"
#include "openstack_settings.h"

namespace rbdluks {
namespace {

using Factory = std::function<Result<std::unique_ptr<Keyring>>(const KeyringEnvironment&)>;

const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> registry = {
      {"file", [](const KeyringEnvironment&) -> Result<std::unique_ptr<Keyring>> { return make_file_keyring(); }},
      {"config-key",
       [](const KeyringEnvironment& env) -> Result<std::unique_ptr<Keyring>> {
         if (!env.ceph) return Error(Errc::key_unavailable, "config-key needs a Ceph connection");
         auto connection = env.ceph();
         if (!connection) {
           return Error(Errc::key_unavailable, "config-key: " + connection.error().message());
         }
         return make_config_key_keyring(std::move(connection).value());
       }},
      {"barbican",
       [](const KeyringEnvironment& env) -> Result<std::unique_ptr<Keyring>> {
         RL_ASSIGN(auto settings, load_openstack_settings(env.config_path));
         auto http = std::make_shared<const HttpClient>(std::move(settings.http));
         auto auth = std::make_shared<KeystoneAuth>(std::move(settings.credentials), std::move(http));
         return make_barbican_keyring(std::move(auth), std::move(settings.barbican));
       }},
  };
  return registry;
}

}  // namespace

Result<std::unique_ptr<Keyring>> open_keyring(const std::string& scheme, const KeyringEnvironment& environment) {
  const auto& registry = factories();
  auto it = registry.find(scheme);
  if (it == registry.end())
    return Error(Errc::usage, "unknown keyring '" + scheme + "' (known: " + keyring_schemes() + ")");
  return it->second(environment);
}

std::string keyring_schemes() {
  std::string known;
  for (const auto& [name, factory] : factories()) known += (known.empty() ? "" : ", ") + name;
  return known;
}

bool is_keyring_scheme(const std::string& scheme) { return factories().contains(scheme); }

Result<KeyReferencePolicy> parse_key_reference_policy(const std::string& text) {
  std::vector<std::string> schemes;
  for (const auto& [name, factory] : factories()) schemes.push_back(name);
  return KeyReferencePolicy::parse(text, schemes);
}

Result<SecureBuffer> fetch_key(const KeyReference& reference, const KeyringEnvironment& environment) {
  auto keyring = open_keyring(reference.scheme, environment);
  if (!keyring) {
    Error error = std::move(keyring).error();
    if (error.is(Errc::key_unavailable)) error.context("fetching " + reference.str());
    return error;
  }
  return (*keyring)->fetch(reference.locator);
}

}  // namespace rbdluks
