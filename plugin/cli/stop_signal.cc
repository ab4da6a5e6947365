// StopOnSignal: see stop_signal.h.
#include "stop_signal.h"

namespace rbdluks::cli {
namespace {

volatile std::sig_atomic_t stop_signal = 0;

void request_stop(int signal) { stop_signal = signal; }

}  // namespace

StopOnSignal::StopOnSignal() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  // The handler goes after one signal: a second one takes the default action and ends the process
  // (every step of a run is crash-safe, so the header is as safe then).
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &old_int_);
  sigaction(SIGTERM, &action, &old_term_);
}

StopOnSignal::~StopOnSignal() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

bool stop_signalled() { return stop_signal != 0; }

void clear_stop_signal() { stop_signal = 0; }

}  // namespace rbdluks::cli
