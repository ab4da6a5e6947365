// fill_random: getrandom(2) in a loop, since it may return fewer bytes than asked for.
#include "random.h"

#include <sys/random.h>

#include <cerrno>

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

}  // namespace rbdluks
