// check_kdf_cost and kdf_cost_in_limits: the limits of kdf_cost_limits.h applied to one KDF.
#include "kdf_cost_limits.h"

#include <algorithm>

namespace rbdluks {
namespace {

Error too_costly(const std::string& where, const std::string& what) {
  return Error(Errc::bad_header, where + ": " + what + ", more than any real header asks (a hostile header?)");
}

}  // namespace

Status check_pbkdf2_cost(uint32_t iterations, const std::string& where) {
  if (iterations > kMaxPbkdf2Iterations) {
    return too_costly(where, "PBKDF2 with " + std::to_string(iterations) + " iterations (limit " +
                                 std::to_string(kMaxPbkdf2Iterations) + ")");
  }
  return {};
}

Status check_kdf_cost(const KdfParams& params, const std::string& where) {
  if (params.type == KdfType::pbkdf2) return check_pbkdf2_cost(params.iterations, where);
  if (params.parallel > kMaxArgon2Parallel) {
    return too_costly(where, "Argon2 with " + std::to_string(params.parallel) + " threads (limit " +
                                 std::to_string(kMaxArgon2Parallel) + ")");
  }
  if (params.memory_kib > kMaxArgon2MemoryKib) {
    return too_costly(where, "Argon2 with " + std::to_string(params.memory_kib) + " KiB of memory (limit " +
                                 std::to_string(kMaxArgon2MemoryKib) + ")");
  }
  if (uint64_t{params.memory_kib} < 8 * uint64_t{params.parallel}) {
    return Error(Errc::bad_header, where + ": Argon2 memory " + std::to_string(params.memory_kib) +
                                       " KiB is below 8 KiB for each of its " + std::to_string(params.parallel) +
                                       " threads");
  }
  if (uint64_t{params.iterations} * params.memory_kib > kMaxArgon2Work) {
    return too_costly(where, "Argon2 with " + std::to_string(params.iterations) + " passes over " +
                                 std::to_string(params.memory_kib) + " KiB (limit " + std::to_string(kMaxArgon2Work) +
                                 " KiB passes)");
  }
  return {};
}

double kdf_cost_in_limits(const KdfParams& params) {
  if (params.type == KdfType::pbkdf2) return static_cast<double>(params.iterations) / kMaxPbkdf2Iterations;
  return static_cast<double>(uint64_t{params.iterations} * params.memory_kib) / static_cast<double>(kMaxArgon2Work);
}

}  // namespace rbdluks
