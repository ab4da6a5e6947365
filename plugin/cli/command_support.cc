// Small helpers shared by all commands.
#include <cstdio>

#include "commands.h"

namespace rbdluks::cli {

Status expect_args(const Args& args, size_t min, size_t max, const char* synopsis) {
  if (args.size() < min || args.size() > max) {
    return Error(Errc::usage, std::string("wrong number of arguments; usage: rbd-luks ") + synopsis);
  }
  return {};
}

void inform(const CommandLine& cl, const std::string& line) {
  if (!cl.has("quiet")) std::fprintf(stderr, "%s\n", line.c_str());
}

}  // namespace rbdluks::cli
