// fill_random: getrandom(2) in a loop, since it may return fewer bytes than asked for.
#include "random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <vector>

namespace rbdluks {

Status fill_random(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("getrandom");
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<std::string> random_hex(size_t bytes) {
  std::vector<uint8_t> raw(bytes);
  RL_TRY(fill_random(raw));
  std::string out;
  for (const uint8_t b : raw) {
    char hex[3];
    std::snprintf(hex, sizeof hex, "%02x", b);
    out += hex;
  }
  return out;
}

}  // namespace rbdluks
