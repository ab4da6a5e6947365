// This process's memory, as the kernel counts it: the resident set, its high-water mark and the
// locked part (VmRSS, VmHWM, VmLck in /proc/self/status). `bench io` resets the mark before each run so that every run
// reports its own peak rather than the process's lifetime one, and the memory tests bound it.
#pragma once

#include <cstdint>
#include <optional>

namespace rbdluks {

// Resets the high-water mark to the current resident set (writes 5 to /proc/self/clear_refs,
// Linux 4.0 and later). False when the kernel refuses.
bool reset_peak_resident_bytes();

// VmHWM, in bytes; nullopt where /proc says nothing.
std::optional<uint64_t> peak_resident_bytes();

// VmRSS, in bytes; nullopt where /proc says nothing.
std::optional<uint64_t> resident_bytes();

// VmLck (memory locked with mlock), in bytes; nullopt where /proc says nothing.
std::optional<uint64_t> locked_bytes();

}  // namespace rbdluks
