// CommandLine: argv split into positional words and --options, with the option table of docs/cli.md.
//
// Options may appear anywhere (as with `rbd`); "--name=value" and "--name value" both work; "--"
// ends option parsing. Unknown options are usage errors.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "result.h"

namespace rbdluks::cli {

class CommandLine {
 public:
  static Result<CommandLine> parse(int argc, const char* const* argv);

  const std::vector<std::string>& positional() const { return positional_; }
  bool has(const std::string& option) const { return flags_.count(option) != 0 || values_.count(option) != 0; }
  std::optional<std::string> get(const std::string& option) const;  // the last one given
  // Every value of an option that may be given more than once, in order.
  std::vector<std::string> get_all(const std::string& option) const;

  // Typed getters: a present but malformed value is a usage error naming the option.
  Result<std::optional<uint64_t>> get_uint(const std::string& option) const;
  Result<std::optional<double>> get_number(const std::string& option) const;
  // Sizes accept suffixes K, M, G, T (powers of 1024) as `rbd --size` does.
  Result<std::optional<uint64_t>> get_size(const std::string& option) const;

 private:
  std::vector<std::string> positional_;
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> flags_;
};

// Parses a decimal integer with an optional K/M/G/T suffix (binary units).
Result<uint64_t> parse_size(const std::string& text, bool allow_suffix);

}  // namespace rbdluks::cli
