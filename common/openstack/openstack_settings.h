// OpenStackSettings: how the Barbican keyring reaches Keystone and Barbican, from the [barbican]
// section of rbd-luks's config file and, on top of it, the environment variables the OpenStack
// command-line clients use (OS_AUTH_URL, OS_USERNAME, ... as an openrc file sets them).
//
// The config file is the --config option, else $RBD_LUKS_CONF, else /etc/rbd-luks/rbd-luks.conf
// when it exists. It is INI: "[section]", "key = value", whole-line comments with # or ;. Keys of
// [barbican] (each overridden by the environment variable after it):
//   auth_url OS_AUTH_URL, auth_type OS_AUTH_TYPE (password | v3applicationcredential),
//   username OS_USERNAME, user_id OS_USER_ID, password OS_PASSWORD,
//   user_domain_name OS_USER_DOMAIN_NAME, user_domain_id OS_USER_DOMAIN_ID,
//   project_name OS_PROJECT_NAME, project_id OS_PROJECT_ID,
//   project_domain_name OS_PROJECT_DOMAIN_NAME, project_domain_id OS_PROJECT_DOMAIN_ID,
//   application_credential_id OS_APPLICATION_CREDENTIAL_ID,
//   application_credential_name OS_APPLICATION_CREDENTIAL_NAME,
//   application_credential_secret OS_APPLICATION_CREDENTIAL_SECRET,
//   region_name OS_REGION_NAME, interface OS_INTERFACE, barbican_url RBD_LUKS_BARBICAN_URL,
//   cafile OS_CACERT; and file only: insecure (false), insecure_http (false: plain http only to
//   the loopback interface), timeout (s, per request, 30), connect_timeout (s, 10), retries (2).
// A file that holds a password or secret must not be readable by everyone; such a file is refused.
#pragma once

#include <cstdlib>
#include <functional>
#include <optional>
#include <string>

#include "barbican_keyring.h"
#include "http_client.h"
#include "keystone_auth.h"
#include "result.h"

namespace rbdluks {

struct OpenStackSettings {
  KeystoneCredentials credentials;
  BarbicanEndpoint barbican;
  HttpOptions http;
  std::string sources;  // "the environment and /etc/rbd-luks/rbd-luks.conf", for messages
};

inline constexpr const char* kDefaultConfigPath = "/etc/rbd-luks/rbd-luks.conf";

// An environment variable's value, or nullptr when it is unset (getenv's contract).
using EnvironmentLookup = std::function<const char*(const char*)>;

// The settings, checked to be complete enough to authenticate. Errors are Errc::key_unavailable.
Result<OpenStackSettings> load_openstack_settings(const std::optional<std::string>& config_path,
                                                  const EnvironmentLookup& environment = ::getenv);

}  // namespace rbdluks
