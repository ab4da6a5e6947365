// CommandLine parsing. The option table is the single list of every option the command knows.
#include "command_line.h"

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace rbdluks::cli {
namespace {

struct OptionSpec {
  const char* name;
  char short_name;
  bool takes_value;
};

constexpr std::array kOptions = {
    // Ceph connection
    OptionSpec{"conf", 'c', true},
    OptionSpec{"id", 0, true},
    OptionSpec{"name", 'n', true},
    OptionSpec{"keyring", 0, true},
    OptionSpec{"cluster", 0, true},
    // key source
    OptionSpec{"passphrase-file", 0, true},
    OptionSpec{"key-ref", 0, true},
    OptionSpec{"accept-key-refs", 0, true},
    OptionSpec{"passphrase-encoding", 0, true},
    OptionSpec{"new-passphrase-file", 0, true},
    OptionSpec{"keyslot-passphrase-file", 0, true},
    OptionSpec{"key-slot", 0, true},
    OptionSpec{"config", 0, true},
    // output
    OptionSpec{"quiet", 'q', false},
    OptionSpec{"json", 0, false},
    OptionSpec{"help", 'h', false},
    // format options
    OptionSpec{"type", 0, true},
    OptionSpec{"cipher", 0, true},
    OptionSpec{"key-size", 0, true},
    OptionSpec{"sector-size", 0, true},
    OptionSpec{"pbkdf", 0, true},
    OptionSpec{"iter-time", 0, true},
    OptionSpec{"pbkdf-force-iterations", 0, true},
    OptionSpec{"pbkdf-memory", 0, true},
    OptionSpec{"pbkdf-parallel", 0, true},
    OptionSpec{"hash", 0, true},
    OptionSpec{"new-key", 0, true},
    OptionSpec{"uuid", 0, true},
    OptionSpec{"data-offset", 0, true},
    OptionSpec{"force", 0, false},
    OptionSpec{"resume", 0, false},
    OptionSpec{"hotzone-size", 0, true},
    OptionSpec{"resilience-hash", 0, true},
    OptionSpec{"threads", 0, true},
    OptionSpec{"online", 0, false},
    // data commands
    OptionSpec{"size", 's', true},
    OptionSpec{"offset", 0, true},
    OptionSpec{"length", 0, true},
    OptionSpec{"sparse-size", 0, true},
    OptionSpec{"dump-volume-key", 0, false},
    OptionSpec{"volume-key-file", 0, true},
    OptionSpec{"seconds", 0, true},
    OptionSpec{"rounds", 0, true},
    OptionSpec{"block-sizes", 0, true},
    OptionSpec{"misalign", 0, true},
    OptionSpec{"queue-depths", 0, true},
    OptionSpec{"rw", 0, true},
    OptionSpec{"paths", 0, true},
    // nbd-server
    OptionSpec{"socket", 0, true},
    OptionSpec{"port", 0, true},
    OptionSpec{"address", 0, true},
    OptionSpec{"read-only", 0, false},
    OptionSpec{"pidfile", 0, true},
    OptionSpec{"reencrypt", 0, false},
};

const OptionSpec* find_long(const std::string& name) {
  for (const auto& spec : kOptions) {
    if (name == spec.name) return &spec;
  }
  return nullptr;
}

const OptionSpec* find_short(char c) {
  for (const auto& spec : kOptions) {
    if (spec.short_name == c) return &spec;
  }
  return nullptr;
}

Error usage(const std::string& message) { return {Errc::usage, message}; }

}  // namespace

Result<uint64_t> parse_size(const std::string& text, bool allow_suffix) {
  if (text.empty() || text[0] < '0' || text[0] > '9') return usage("'" + text + "' is not a number");
  errno = 0;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0) return usage("'" + text + "' is out of range");
  unsigned shift = 0;
  const std::string suffix(end);
  if (!suffix.empty()) {
    if (!allow_suffix || suffix.size() != 1) return usage("'" + text + "' is not a number");
    switch (suffix[0]) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      case 'T':
      case 't':
        shift = 40;
        break;
      default:
        return usage("'" + text + "' has an unknown size suffix (use K, M, G or T)");
    }
  }
  if (shift != 0 && value > (UINT64_MAX >> shift)) return usage("'" + text + "' is out of range");
  return static_cast<uint64_t>(value) << shift;
}

Result<CommandLine> CommandLine::parse(int argc, const char* const* argv) {
  CommandLine cl;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (options_done || arg == "-" || arg.size() < 2 || arg[0] != '-') {
      cl.positional_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    const OptionSpec* spec = nullptr;
    std::optional<std::string> inline_value;
    if (arg[1] == '-') {
      const size_t eq = arg.find('=');
      spec = find_long(arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2));
      if (eq != std::string::npos) inline_value = arg.substr(eq + 1);
    } else if (arg.size() == 2) {
      spec = find_short(arg[1]);
    }
    if (spec == nullptr) return usage("unknown option " + arg);
    if (!spec->takes_value) {
      if (inline_value) return usage("option --" + std::string(spec->name) + " takes no value");
      cl.flags_.insert(spec->name);
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argc) return usage("option " + arg + " needs a value");
      inline_value = argv[++i];
    }
    cl.values_[spec->name].push_back(*inline_value);
  }
  return cl;
}

std::optional<std::string> CommandLine::get(const std::string& option) const {
  auto it = values_.find(option);
  if (it == values_.end()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> CommandLine::get_all(const std::string& option) const {
  auto it = values_.find(option);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

Result<std::optional<uint64_t>> CommandLine::get_uint(const std::string& option) const {
  auto text = get(option);
  if (!text) return std::optional<uint64_t>();
  auto value = parse_size(*text, false);
  if (!value) return usage("--" + option + ": " + value.error().message());
  return std::optional<uint64_t>(*value);
}

Result<std::optional<double>> CommandLine::get_number(const std::string& option) const {
  auto text = get(option);
  if (!text) return std::optional<double>();
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text->c_str(), &end);
  if (text->empty() || *end != '\0' || errno != 0 || !std::isfinite(value)) {
    return usage("--" + option + ": '" + *text + "' is not a number");
  }
  return std::optional<double>(value);
}

Result<std::optional<uint64_t>> CommandLine::get_size(const std::string& option) const {
  auto text = get(option);
  if (!text) return std::optional<uint64_t>();
  auto value = parse_size(*text, true);
  if (!value) return usage("--" + option + ": " + value.error().message());
  return std::optional<uint64_t>(*value);
}

}  // namespace rbdluks::cli
