// Progress: redraws at most ten times a second with percent and MB/s.
#include "progress.h"

#include <cstdio>

namespace rbdluks::cli {

Progress::Progress(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() {
  if (drawn_) std::fputc('\n', stderr);
}

void Progress::update(uint64_t done) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && done < total_ && now - last_ < std::chrono::milliseconds(100)) return;
  if (!drawn_) first_ = done;  // a resumed or followed run starts part done: its rate is from here
  last_ = now;
  drawn_ = true;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double mbps = seconds > 0 ? static_cast<double>(done - first_) / seconds / 1e6 : 0.0;
  if (total_ > 0) {
    std::fprintf(stderr, "\r%s: %5.1f%% (%llu MiB of %llu MiB, %.0f MB/s)", label_.c_str(),
                 100.0 * static_cast<double>(done) / static_cast<double>(total_),
                 static_cast<unsigned long long>(done >> 20), static_cast<unsigned long long>(total_ >> 20), mbps);
  } else {
    std::fprintf(stderr, "\r%s: %llu MiB (%.0f MB/s)", label_.c_str(), static_cast<unsigned long long>(done >> 20),
                 mbps);
  }
}

}  // namespace rbdluks::cli
