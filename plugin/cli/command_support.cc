// Small helpers shared by all commands.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "printable_text.h"

namespace rbdluks::cli {

Status expect_args(const Args& args, size_t min, size_t max, const char* synopsis) {
  if (args.size() < min || args.size() > max) {
    return Error(Errc::usage, std::string("wrong number of arguments; usage: rbd-luks ") + synopsis);
  }
  return {};
}

void inform(const CommandLine& cl, const std::string& line) {
  if (!cl.has("quiet")) std::fprintf(stderr, "%s\n", printable(line).c_str());
}

void print_json(const nlohmann::json& document) {
  std::cout << document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

}  // namespace rbdluks::cli
