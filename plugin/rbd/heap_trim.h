// Heap trimming once a client's I/O pauses. Write ciphertext comes from the C library's heap, as
// librbd's own copies of plain writes do, and read ciphertext arrives in librbd's receive buffers,
// which rbd-luks frees after decrypting. glibc keeps what is freed for reuse: after freeing a 4 MiB
// buffer it raises its thresholds (mmap to 4 MiB, trim to 8 MiB, for the process), so after a burst of
// large requests a client can hold tens of MiB that nothing uses until its allocations happen to
// reuse them. A thread of its own, started with the first request, hands the free pages of every
// arena back to the kernel (malloc_trim(0)) once at least kTrimAfterBytes of ciphertext have gone
// through and no request has for kTrimAfterIdleMs. While I/O keeps flowing nothing is trimmed, and
// a stream of writes accumulates nothing either (EncryptedRbdImageTest.LongWriteRun...). Trimming whenever an
// image fell idle, even between the requests of a queue-depth-1 stream, cost 4 MiB reads about a
// tenth of their throughput: the receive buffers librbd allocated next were faulted in afresh.
#pragma once

#include <cstdint>

namespace rbdluks {

inline constexpr uint64_t kTrimAfterBytes = uint64_t{32} << 20;
inline constexpr int64_t kTrimAfterIdleMs = 500;

// Counts `bytes` of ciphertext written or read, now. Cheap: two relaxed atomics and a clock read.
void note_ciphertext(uint64_t bytes);

}  // namespace rbdluks
