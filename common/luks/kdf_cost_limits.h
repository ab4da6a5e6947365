// KDF cost limits for headers read from images: what a keyslot or a digest may ask a reader to
// spend before the passphrase is known to be right.
//
// A header is attacker-controlled input wherever users upload images (a hypervisor opening a volume
// it did not format). The KDF parameters stored in it decide how much CPU time and memory an open
// costs, and they are paid before anything can be verified. So a header is refused as bad
// (Errc::bad_header) when one KDF, or all keyslots together, would cost more than any header made by
// cryptsetup, librbd or rbd-luks ever asks; the check costs nothing, unlike the KDF.
#pragma once

#include <cstdint>
#include <string>

#include "kdf.h"
#include "result.h"

namespace rbdluks {

// Argon2: cryptsetup's own maxima for memory (4 GiB) and threads (4, here with room to 16), and at
// most 2^36 KiB of memory passes (time x memory): 16 times cryptsetup's default of 4 passes over
// 1 GiB, about a minute of one core. Argon2 also needs 8 KiB of memory per thread.
inline constexpr uint32_t kMaxArgon2MemoryKib = 4u << 20;
inline constexpr uint32_t kMaxArgon2Parallel = 16;
inline constexpr uint64_t kMaxArgon2Work = uint64_t{1} << 36;
// PBKDF2 iterations: a 2-second benchmark gives 1-5 million with sha256 on current CPUs; 2^27 is
// about 30 seconds of one core.
inline constexpr uint32_t kMaxPbkdf2Iterations = 1u << 27;
// All keyslots of a header together cost at most as much as this many keyslots at the limits above
// (32 keyslots at cryptsetup's defaults stay under 2), which bounds one open with a wrong passphrase.
inline constexpr double kMaxKeyslotsCostInLimits = 8.0;

// Errc::bad_header naming `where` when params exceed the limits; a reader has paid nothing yet.
Status check_kdf_cost(const KdfParams& params, const std::string& where);
// The same for PBKDF2 with this many iterations (a LUKS1 keyslot, or a volume key digest).
Status check_pbkdf2_cost(uint32_t iterations, const std::string& where);

// The cost of params as a fraction of the limit for its type (1.0 = at the limit).
double kdf_cost_in_limits(const KdfParams& params);

}  // namespace rbdluks
