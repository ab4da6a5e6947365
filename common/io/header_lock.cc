// Waiting for the header lock: tries with a growing, jittered pause between them (so clients that
// queue up behind one holder do not all retry in lockstep), up to RBD_LUKS_LOCK_TIMEOUT.
#include "header_lock.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

namespace rbdluks {
namespace {

constexpr unsigned kDefaultWaitS = 30;
constexpr std::chrono::milliseconds kFirstPause{20};
constexpr std::chrono::milliseconds kLongestPause{500};

Result<unsigned> wait_seconds() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): rbd-luks never writes the environment.
  const char* env = std::getenv("RBD_LUKS_LOCK_TIMEOUT");
  if (env == nullptr || *env == '\0') return kDefaultWaitS;
  char* end = nullptr;
  errno = 0;
  const unsigned long value = std::strtoul(env, &end, 10);
  if (errno != 0 || *end != '\0' || value > 86400 || *env == '-') {
    return Error(Errc::usage,
                 "RBD_LUKS_LOCK_TIMEOUT must be a number of seconds in 0..86400, not '" + std::string(env) + "'");
  }
  return static_cast<unsigned>(value);
}

}  // namespace

Result<std::unique_ptr<HeaderLock>> wait_for_header_lock(const std::string& image_name,
                                                         const std::function<Result<HeaderLockAttempt>()>& attempt) {
  RL_ASSIGN(const unsigned seconds, wait_seconds());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::minstd_rand jitter(static_cast<unsigned>(getpid()) ^
                          static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  auto pause = kFirstPause;
  for (;;) {
    RL_ASSIGN(HeaderLockAttempt tried, attempt());
    if (tried.lock) return std::move(tried.lock);
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return Error(Errc::failure, image_name + ": another client is changing the LUKS header (" + tried.holder +
                                      "); gave up after " + std::to_string(seconds) +
                                      " s (RBD_LUKS_LOCK_TIMEOUT sets the wait)");
    }
    const auto sleep = pause / 2 + std::chrono::milliseconds(jitter() % static_cast<unsigned>(pause.count()));
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(sleep, deadline - now));
    pause = std::min(pause * 3 / 2, kLongestPause);
  }
}

std::string header_lock_holder(const std::string& purpose) {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '?';
  return purpose + ", pid " + std::to_string(getpid()) + " on " + host;
}

}  // namespace rbdluks
