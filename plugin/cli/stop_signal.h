// SIGINT and SIGTERM as a request to stop a long command between its steps (reencrypt, encrypt,
// decrypt, and following an online reencryption); a second signal ends the process at once.
#pragma once

#include <csignal>

namespace rbdluks::cli {

// While one exists, SIGINT and SIGTERM set the flag that stop_signalled() reads.
class StopOnSignal {
 public:
  StopOnSignal();
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

bool stop_signalled();
void clear_stop_signal();

}  // namespace rbdluks::cli
