// The memory SecureBuffer takes its bytes from: pages that are locked (mlock, so never swapped out),
// left out of core dumps (MADV_DONTDUMP), not given to a forked child (MADV_DONTFORK, plus
// MADV_WIPEONFORK where the kernel has it, 4.14 and later), and zeroed whenever an allocation is
// freed.
//
// Most secrets are small (a 64-byte key, a passphrase, a derived key), and RLIMIT_MEMLOCK is often
// 64 KiB or 8 MiB: one locked page per secret would exhaust it quietly. So allocations up to half a
// page share pages, in power-of-two size classes from 16 bytes; larger ones get pages of their own.
//
// When mlock fails (RLIMIT_MEMLOCK exhausted, no CAP_IPC_LOCK), the memory is still used, zeroed on
// free and kept out of core dumps, but may be swapped out; that is reported: once through the
// warning callback, and at any time through secure_memory_status().
//
// In a child made by fork(), the parent's secure memory is gone (its addresses stay reserved and
// inaccessible, so a stray access faults instead of reaching other data); freeing a parent's buffer
// there does nothing, and new allocations get fresh pages.
#pragma once

#include <cstddef>

namespace rbdluks {

// size bytes (> 0), zero-filled, aligned to 16 bytes at least. Throws std::bad_alloc.
void* secure_allocate(size_t size);

// Zeroes and frees an allocation from secure_allocate (all of it, whatever size it was asked with).
void secure_free(void* data);

struct SecureMemoryStatus {
  size_t locked_bytes = 0;    // pages held for secrets that are locked
  size_t unlocked_bytes = 0;  // pages held for secrets that could not be locked: may be swapped out
  int lock_error = 0;         // errno of the first mlock that failed in this process, 0 if none did
};
SecureMemoryStatus secure_memory_status();

// Called once per process, the first time memory for secrets cannot be locked, with one line that
// says so and why (never a secret). Set it before secrets are allocated; nullptr: no call. It runs
// inside secure_allocate and must not allocate secure memory itself.
using SecureMemoryWarning = void (*)(const char* message);
void set_secure_memory_warning(SecureMemoryWarning warning);

}  // namespace rbdluks
