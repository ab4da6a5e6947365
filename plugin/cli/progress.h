// A progress bar on stderr for long copies; silent unless stderr is a terminal and not --quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace rbdluks::cli {

class Progress {
 public:
  Progress(std::string label, uint64_t total, bool enabled);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(uint64_t done);

 private:
  std::string label_;
  uint64_t total_;
  bool enabled_;
  bool drawn_ = false;
  uint64_t first_ = 0;  // done at the first update
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace rbdluks::cli
