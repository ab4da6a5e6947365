// OpenStackSettings: one table of settings, filled from the config file and then the environment.
// Secret values go from the file's SecureBuffer (or the environment) straight into SecureBuffers.
#include "openstack_settings.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "secret_file.h"

namespace rbdluks {
namespace {

struct Loading {
  OpenStackSettings settings;
  std::string auth_type;
};

Error invalid(std::string_view key, const std::string& why) {
  return Error(Errc::key_unavailable, "setting " + std::string(key) + ": " + why);
}

Result<unsigned long> parse_number(std::string_view key, std::string_view text, unsigned long max) {
  unsigned long value = 0;
  if (text.empty() || text.size() > 9) return invalid(key, "'" + std::string(text) + "' is not a number");
  for (char c : text) {
    if (c < '0' || c > '9') return invalid(key, "'" + std::string(text) + "' is not a number");
    value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  if (value > max) return invalid(key, std::string(text) + " is more than " + std::to_string(max));
  return value;
}

Result<std::chrono::seconds> parse_seconds(std::string_view key, std::string_view text) {
  RL_ASSIGN(const unsigned long seconds, parse_number(key, text, 3600));
  if (seconds == 0) return invalid(key, "must be at least 1 second");
  return std::chrono::seconds(seconds);
}

Status parse_interface(Loading& l, std::string_view v) {
  // The clients also accept the old catalog names publicURL, internalURL, adminURL.
  if (v.ends_with("URL")) v.remove_suffix(3);
  if (v != "public" && v != "internal" && v != "admin") {
    return invalid("interface", "'" + std::string(v) + "' is not public, internal or admin");
  }
  l.settings.barbican.interface = v;
  return {};
}

Result<bool> parse_bool(std::string_view key, std::string_view v) {
  for (std::string_view yes : {"true", "yes", "on", "1"}) {
    if (v == yes) return true;
  }
  for (std::string_view no : {"false", "no", "off", "0"}) {
    if (v == no) return false;
  }
  return invalid(key, "'" + std::string(v) + "' is not true or false");
}

Status parse_insecure(Loading& l, std::string_view v) {
  RL_ASSIGN(const bool insecure, parse_bool("insecure", v));
  l.settings.http.verify_tls = !insecure;
  return {};
}

Status parse_insecure_http(Loading& l, std::string_view v) {
  RL_ASSIGN(l.settings.http.allow_plain_http, parse_bool("insecure_http", v));
  return {};
}

Status parse_timeout(Loading& l, std::string_view v) {
  RL_ASSIGN(l.settings.http.timeout, parse_seconds("timeout", v));
  return {};
}

Status parse_connect_timeout(Loading& l, std::string_view v) {
  RL_ASSIGN(l.settings.http.connect_timeout, parse_seconds("connect_timeout", v));
  return {};
}

Status parse_retries(Loading& l, std::string_view v) {
  RL_ASSIGN(const unsigned long retries, parse_number("retries", v, 10));
  l.settings.http.attempts = static_cast<unsigned>(retries) + 1;
  return {};
}

// A setting: copied into a text or a secret field, or parsed.
struct Field {
  const char* key;  // in [barbican]
  const char* env;  // nullptr: config file only
  std::string* (*text)(Loading&) = nullptr;
  SecureBuffer* (*secret)(Loading&) = nullptr;
  Status (*parse)(Loading&, std::string_view) = nullptr;
};

Status apply(const Field& field, Loading& l, std::string_view value) {
  if (field.text != nullptr) {
    *field.text(l) = value;
    return {};
  }
  if (field.secret != nullptr) {
    *field.secret(l) = SecureBuffer::copy_of(value);
    return {};
  }
  return field.parse(l, value);
}

using L = Loading;
const Field kFields[] = {
    {"auth_url", "OS_AUTH_URL", [](L& l) { return &l.settings.credentials.auth_url; }},
    {"auth_type", "OS_AUTH_TYPE", [](L& l) { return &l.auth_type; }},
    {"username", "OS_USERNAME", [](L& l) { return &l.settings.credentials.username; }},
    {"user_id", "OS_USER_ID", [](L& l) { return &l.settings.credentials.user_id; }},
    {"password", "OS_PASSWORD", nullptr, [](L& l) { return &l.settings.credentials.password; }},
    {"user_domain_name", "OS_USER_DOMAIN_NAME", [](L& l) { return &l.settings.credentials.user_domain_name; }},
    {"user_domain_id", "OS_USER_DOMAIN_ID", [](L& l) { return &l.settings.credentials.user_domain_id; }},
    {"project_name", "OS_PROJECT_NAME", [](L& l) { return &l.settings.credentials.project_name; }},
    {"project_id", "OS_PROJECT_ID", [](L& l) { return &l.settings.credentials.project_id; }},
    {"project_domain_name", "OS_PROJECT_DOMAIN_NAME", [](L& l) { return &l.settings.credentials.project_domain_name; }},
    {"project_domain_id", "OS_PROJECT_DOMAIN_ID", [](L& l) { return &l.settings.credentials.project_domain_id; }},
    {"application_credential_id", "OS_APPLICATION_CREDENTIAL_ID",
     [](L& l) { return &l.settings.credentials.application_credential_id; }},
    {"application_credential_name", "OS_APPLICATION_CREDENTIAL_NAME",
     [](L& l) { return &l.settings.credentials.application_credential_name; }},
    {"application_credential_secret", "OS_APPLICATION_CREDENTIAL_SECRET", nullptr,
     [](L& l) { return &l.settings.credentials.application_credential_secret; }},
    {"region_name", "OS_REGION_NAME", [](L& l) { return &l.settings.barbican.region; }},
    {"interface", "OS_INTERFACE", nullptr, nullptr, parse_interface},
    {"barbican_url", "RBD_LUKS_BARBICAN_URL", [](L& l) { return &l.settings.barbican.url; }},
    {"cafile", "OS_CACERT", [](L& l) { return &l.settings.http.ca_file; }},
    {"insecure", nullptr, nullptr, nullptr, parse_insecure},
    {"insecure_http", nullptr, nullptr, nullptr, parse_insecure_http},
    {"timeout", nullptr, nullptr, nullptr, parse_timeout},
    {"connect_timeout", nullptr, nullptr, nullptr, parse_connect_timeout},
    {"retries", nullptr, nullptr, nullptr, parse_retries},
};

const Field* find_field(std::string_view key) {
  for (const Field& field : kFields) {
    if (key == field.key) return &field;
  }
  return nullptr;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

// Applies the [barbican] section of the file at path.
Status load_file(const std::string& path, Loading& loading) {
  auto fail = [&path](const std::string& why) { return Error(Errc::key_unavailable, "config " + path + ": " + why); };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fail(std::generic_category().message(errno));
  auto content = read_secret_file(path, 1 << 20);
  if (!content) return fail(content.error().message());
  const std::string_view text(reinterpret_cast<const char*>(content->data()), content->size());
  bool in_section = false;
  bool holds_secret = false;
  size_t line_number = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = trim(text.substr(start, end - start));
    start = end + 1;
    ++line_number;
    const std::string where = "line " + std::to_string(line_number);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') return fail(where + ": malformed section header");
      in_section = trim(line.substr(1, line.size() - 2)) == "barbican";
      continue;
    }
    if (!in_section) continue;
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) return fail(where + ": expected key = value in [barbican]");
    const std::string_view key = trim(line.substr(0, eq));
    const Field* field = find_field(key);
    if (field == nullptr) return fail(where + ": unknown key '" + std::string(key) + "' in [barbican]");
    if (auto set = apply(*field, loading, trim(line.substr(eq + 1))); !set) {
      return fail(where + ": " + set.error().message());
    }
    holds_secret = holds_secret || field->secret != nullptr;
  }
  if (holds_secret && (st.st_mode & S_IROTH) != 0) {
    return fail("holds a password or secret but is readable by everyone; run chmod o-r " + path);
  }
  return {};
}

Status apply_auth_type(Loading& loading) {
  KeystoneCredentials& c = loading.settings.credentials;
  const std::string& type = loading.auth_type;
  if (type.empty()) return {};
  if (type == "password" || type == "v3password") {
    c.application_credential_secret = SecureBuffer();
    return {};
  }
  if (type == "v3applicationcredential") {
    if (!c.uses_application_credential()) {
      return invalid("auth_type", "v3applicationcredential needs OS_APPLICATION_CREDENTIAL_SECRET");
    }
    return {};
  }
  return invalid("auth_type", "'" + type + "' is not password or v3applicationcredential");
}

}  // namespace

Result<OpenStackSettings> load_openstack_settings(const std::optional<std::string>& config_path,
                                                  const EnvironmentLookup& environment) {
  Loading loading;
  std::optional<std::string> path = config_path;
  if (!path) {
    if (const char* env_path = environment("RBD_LUKS_CONF"); env_path != nullptr && *env_path != '\0') {
      path = env_path;
    } else if (struct stat st{}; ::stat(kDefaultConfigPath, &st) == 0) {
      path = kDefaultConfigPath;
    }
  }
  if (path) RL_TRY(load_file(*path, loading));
  for (const Field& field : kFields) {
    if (field.env == nullptr) continue;
    const char* value = environment(field.env);
    if (value == nullptr || *value == '\0') continue;
    if (auto set = apply(field, loading, value); !set) {
      return Error(Errc::key_unavailable, std::string(field.env) + ": " + set.error().message());
    }
  }
  RL_TRY(apply_auth_type(loading));
  loading.settings.sources = path ? "the environment and " + *path : "the environment (no config file)";
  if (auto complete = loading.settings.credentials.check(); !complete) {
    return Error(Errc::key_unavailable,
                 complete.error().message() + " (settings from " + loading.settings.sources + ")");
  }
  return std::move(loading.settings);
}

}  // namespace rbdluks
