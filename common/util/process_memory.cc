// Reads and resets this process's resident-set figures through /proc.
#include "process_memory.h"

#include <fstream>
#include <string>

namespace rbdluks {
namespace {

// A "Name:   1234 kB" line of /proc/self/status, in bytes.
std::optional<uint64_t> status_kib_field(const std::string& name) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(name + ":", 0) != 0) continue;
    try {
      return std::stoull(line.substr(name.size() + 1)) * 1024;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace

bool reset_peak_resident_bytes() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

std::optional<uint64_t> peak_resident_bytes() { return status_kib_field("VmHWM"); }

std::optional<uint64_t> resident_bytes() { return status_kib_field("VmRSS"); }

std::optional<uint64_t> locked_bytes() { return status_kib_field("VmLck"); }

}  // namespace rbdluks
