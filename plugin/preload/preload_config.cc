// PreloadConfig: see preload_config.h.
#include "preload_config.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <system_error>

namespace rbdluks::preload {
namespace {

std::string trimmed(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

PreloadConfig load() {
  PreloadConfig config;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read once, at the first open, as librados reads CEPH_CONF.
  const char* from_environment = std::getenv("RBD_LUKS_PRELOAD_CONF");
  config.path = from_environment != nullptr ? from_environment : "/etc/ceph/rbd-luks-preload.conf";
  std::ifstream in(config.path);
  if (!in) {
    // Absent is fine (only metadata opts images in); named but unreadable is a mistake.
    if (errno != ENOENT || from_environment != nullptr)
      config.error = config.path + ": " + std::generic_category().message(errno);
    return config;
  }
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = trimmed(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const auto equals = line.find('=');
    const std::string key = trimmed(line.substr(0, equals));
    const std::string value = equals == std::string::npos ? "" : trimmed(line.substr(equals + 1));
    if (value.empty()) {
      config.error = config.path + ":" + std::to_string(number) + ": expected KEY = VALUE";
    } else if (key == "image") {
      config.images.push_back(value);
    } else if (key == "accept-key-refs") {
      config.accept_key_refs = value;
    } else if (key == "passphrase-file") {
      config.passphrase_file = value;
    } else {
      config.error = config.path + ":" + std::to_string(number) + ": unknown setting '" + key + "'";
    }
  }
  return config;
}

}  // namespace

const PreloadConfig& preload_config() {
  static const PreloadConfig config = load();
  return config;
}

}  // namespace rbdluks::preload
