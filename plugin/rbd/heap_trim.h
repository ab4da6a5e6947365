// Heap trimming after bursts of large writes. Ciphertext buffers come from the C library's heap, as
// librbd's own copies of plain writes do, and glibc keeps what is freed there for reuse: after
// freeing a 4 MiB buffer it raises its thresholds (mmap to 4 MiB, trim to 8 MiB, per arena), so
// after a burst of large writes a client can hold tens of MiB that nothing uses until its
// allocations happen to reuse them. When an image falls idle after at least kTrimAfterBytes of
// ciphertext written, malloc_trim(0) (on a worker thread, at most once a second in the process)
// hands the free pages of every arena back to the kernel. While I/O keeps flowing nothing is
// trimmed, and there nothing accumulates either (EncryptedRbdImageTest.LongWriteRun...). Reads do
// not count: trimming after them cost 4 MiB reads at queue depth 1 about a tenth of their
// throughput in an A/B (the receive buffers librbd allocates next are faulted in afresh).
#pragma once

#include <cstdint>

namespace rbdluks {

inline constexpr uint64_t kTrimAfterBytes = uint64_t{32} << 20;

// Whether a trim may run now: true at most once a second in the process (and claims that second).
bool claim_heap_trim();

// Gives the heap's free pages back to the kernel (malloc_trim(0) with glibc; nothing elsewhere).
void trim_heap();

}  // namespace rbdluks
