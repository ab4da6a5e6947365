// choose_kdf_params: the cost of a new keyslot or digest, after cryptsetup's crypt_benchmark_pbkdf
// (lib/utils_benchmark.c, lib/crypto_backend/pbkdf_check.c): the same limits, the same caps on memory
// and threads, the same forced-cost behaviour, and argon2 grows memory before time from the same start.
//
// One deliberate difference: cryptsetup re-measures full-cost argon2 candidates until one lands within
// 95-110% of the target, which costs several times iter_time_ms. We extrapolate linearly from a short
// measurement instead (argon2 and PBKDF2 cost are linear in time*memory and iterations), so choosing
// the cost takes a fraction of iter_time_ms (about 0.6 s for a 2000 ms target).
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "hash.h"
#include "kdf.h"
#include "kdf_memory_budget.h"

namespace rbdluks {
namespace {

constexpr uint32_t kPbkdf2MinIterations = 1000;  // NIST SP 800-132, as cryptsetup
constexpr uint32_t kArgon2MinTime = 4;
constexpr uint32_t kArgon2MinMemoryKib = 32;
constexpr uint32_t kArgon2MaxMemoryKib = 4 * 1024 * 1024;
constexpr uint32_t kArgon2MaxParallel = 4;
// cryptsetup never benchmarks argon2 below 64 MiB unless the memory cap is lower, so even a very short
// iter_time_ms yields at least this much memory.
constexpr uint32_t kArgon2MinBenchMemoryKib = 64 * 1024;

// A measurement is trusted once it takes this long (or the whole target, if that is shorter); the
// lengths are cryptsetup's.
constexpr double kPbkdf2SampleMs = 500;
constexpr double kArgon2SampleMs = 250;
constexpr int kArgon2Samples = 3;  // best of, for the short argon2 runs
constexpr int kMaxSteps = 16;

constexpr std::string_view kBenchPassphrase = "foobarfo";
constexpr std::string_view kBenchSalt = "0123456789abcdef0123456789abcdef";

double clock_ms(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// Milliseconds one derivation takes. PBKDF2 runs on this thread only, so its CPU time is the cost and
// is immune to other load. argon2 runs its lanes on threads of its own: wall time is inflated when the
// machine is busy, process CPU time per lane when other threads of ours are busy; the smaller of the
// two is the better estimate either way.
Result<double> measure(const KdfParams& params, size_t key_size) {
  std::vector<uint8_t> out(key_size);
  const auto as_bytes = [](std::string_view s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  const bool pbkdf2 = params.type == KdfType::pbkdf2;
  const clockid_t cpu_clock = pbkdf2 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_PROCESS_CPUTIME_ID;
  // Taken before the clocks start, so that time spent waiting for memory is not counted as cost.
  const KdfMemoryBudget::Lease memory = KdfMemoryBudget::process().acquire(uint64_t{params.memory_kib} << 10);
  const double wall_start = clock_ms(CLOCK_MONOTONIC);
  const double cpu_start = clock_ms(cpu_clock);
  RL_TRY(derive_key(params, as_bytes(kBenchPassphrase), as_bytes(kBenchSalt), out));
  const double cpu = clock_ms(cpu_clock) - cpu_start;
  if (pbkdf2) return cpu;
  const double wall = clock_ms(CLOCK_MONOTONIC) - wall_start;
  return std::min(wall, cpu / std::max<uint32_t>(params.parallel, 1));
}

// How much to grow a cost whose run took ms so that the next run takes a little over `enough`: the
// headroom keeps noise from forcing another round, and a run too short to tell grows 16-fold.
double growth(double ms, double enough) { return ms <= enough / 16 ? 16 : 1.25 * enough / ms; }

uint32_t clamp_u32(double value) {
  return value >= static_cast<double>(UINT32_MAX) ? UINT32_MAX : static_cast<uint32_t>(std::max(value, 0.0));
}

// PBKDF2 iterations per CPU millisecond, measured. A reencryption signs two digests (the new key's
// and the state's) in one second, and one measurement serves both; one older than a minute is taken
// again, since a long-lived process (an NBD server, a QEMU with the preload library) may have moved
// to another CPU meanwhile.
struct Pbkdf2Rate {
  std::string hash;
  size_t key_size = 0;
  double sample_ms = 0;  // how long the measurement ran: a longer target asks for a longer one
  double iterations_per_ms = 0;
  double measured_at_ms = 0;
};
constexpr double kPbkdf2RateLifetimeMs = 60'000;

Result<double> measure_pbkdf2_rate(const std::string& hash, size_t key_size, double enough) {
  KdfParams params{.type = KdfType::pbkdf2, .hash = hash, .iterations = 1u << 15};
  for (int step = 0; step < kMaxSteps; ++step) {
    RL_ASSIGN(const double ms, measure(params, key_size));
    if (ms >= enough) return params.iterations / ms;
    const uint32_t grown = clamp_u32(params.iterations * growth(ms, enough));
    if (grown == params.iterations) break;
    params.iterations = grown;
  }
  return Error(Errc::failure, "pbkdf2-" + hash + " benchmark: no measurable iteration count");
}

Result<KdfParams> benchmark_pbkdf2(const KdfRequest& request, size_t key_size) {
  static std::mutex mutex;
  static std::optional<Pbkdf2Rate> last;
  const double target = request.iter_time_ms;
  const double enough = std::min(kPbkdf2SampleMs, target);
  const std::lock_guard lock(mutex);
  const double now = clock_ms(CLOCK_MONOTONIC);
  if (!last || last->hash != request.hash || last->key_size != key_size || last->sample_ms < enough ||
      now - last->measured_at_ms > kPbkdf2RateLifetimeMs) {
    RL_ASSIGN(const double rate, measure_pbkdf2_rate(request.hash, key_size, enough));
    last = Pbkdf2Rate{request.hash, key_size, enough, rate, now};
  }
  return KdfParams{.type = KdfType::pbkdf2,
                   .hash = request.hash,
                   .iterations = std::max(clamp_u32(last->iterations_per_ms * target), kPbkdf2MinIterations)};
}

// cryptsetup's next_argon2_params: scale to the target, memory first when growing, time first when
// shrinking (from the search's start at minimum time, that means memory shrinks), within the limits.
void extrapolate_argon2(KdfParams& params, double ms, double target, uint32_t min_memory, uint32_t max_memory) {
  const double t = params.iterations;
  const double m = params.memory_kib;
  if (ms > target) {
    const double new_t = t * target / ms;
    if (new_t < kArgon2MinTime) {
      params.iterations = kArgon2MinTime;
      params.memory_kib = std::max(clamp_u32(t * m * target / (kArgon2MinTime * ms)), min_memory);
    } else {
      params.iterations = clamp_u32(new_t);
    }
  } else {
    const double new_m = m * target / ms;
    if (new_m > max_memory) {
      params.memory_kib = max_memory;
      params.iterations = std::max(clamp_u32(t * m * target / (max_memory * ms)), kArgon2MinTime);
    } else {
      params.memory_kib = std::max(clamp_u32(new_m), min_memory);
    }
  }
}

// Best of a few runs, stopping early once one is long enough to trust.
Result<double> sample_argon2(const KdfParams& params, size_t key_size, double enough) {
  double best = 0;
  for (int i = 0; i < kArgon2Samples; ++i) {
    RL_ASSIGN(const double ms, measure(params, key_size));
    best = i == 0 ? ms : std::min(best, ms);
    if (ms >= enough) break;
  }
  return best;
}

Result<KdfParams> benchmark_argon2(KdfParams params, const KdfRequest& request, size_t key_size) {
  const uint32_t max_memory = params.memory_kib;
  const uint32_t min_memory = std::min(std::max(kArgon2MinBenchMemoryKib, 8 * params.parallel), max_memory);
  const double target = request.iter_time_ms;
  const double enough = std::min(kArgon2SampleMs, target);
  params.iterations = kArgon2MinTime;
  params.memory_kib = min_memory;
  // Find a cost that takes long enough to measure, growing memory up to the cap, then time.
  for (int step = 0; step < kMaxSteps; ++step) {
    RL_ASSIGN(const double ms, sample_argon2(params, key_size, enough));
    if (ms >= enough) {
      extrapolate_argon2(params, ms, target, min_memory, max_memory);
      return params;
    }
    const double factor = growth(ms, enough);
    if (params.memory_kib < max_memory) {
      params.memory_kib = std::min(clamp_u32(params.memory_kib * factor), max_memory);
    } else {
      const uint32_t grown = clamp_u32(params.iterations * factor);
      if (grown == params.iterations) {  // cannot grow: extrapolate from what we have
        extrapolate_argon2(params, ms, target, min_memory, max_memory);
        return params;
      }
      params.iterations = grown;
    }
  }
  return Error(Errc::failure, std::string(kdf_name(params.type)) + " benchmark: no measurable cost");
}

// Half the physical memory, as cryptsetup caps argon2 memory; nullopt when the system reports nonsense.
std::optional<uint64_t> memory_cap_kib() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return std::nullopt;
  const uint64_t kib = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size) / 1024;
  if (kib < uint64_t{128} * 1024) return std::nullopt;
  return kib / 2;
}

Result<KdfParams> choose_pbkdf2(const KdfRequest& request, size_t key_size) {
  RL_TRY(hash_size(request.hash));
  if (request.force_iterations) {
    if (*request.force_iterations < kPbkdf2MinIterations) {
      return Error(Errc::usage, "forced iteration count " + std::to_string(*request.force_iterations) +
                                    " is too low for pbkdf2 (minimum " + std::to_string(kPbkdf2MinIterations) + ")");
    }
    return KdfParams{.type = KdfType::pbkdf2, .hash = request.hash, .iterations = *request.force_iterations};
  }
  return benchmark_pbkdf2(request, key_size);
}

Result<KdfParams> choose_argon2(const KdfRequest& request, size_t key_size) {
  const std::string name(kdf_name(request.type));
  if (request.parallel < 1 || request.parallel > kArgon2MaxParallel) {
    return Error(Errc::usage, name + " parallel cost " + std::to_string(request.parallel) + " is out of range (1 to " +
                                  std::to_string(kArgon2MaxParallel) + ")");
  }
  if (request.max_memory_kib < kArgon2MinMemoryKib || request.max_memory_kib > kArgon2MaxMemoryKib) {
    return Error(Errc::usage, name + " memory cost " + std::to_string(request.max_memory_kib) +
                                  " KiB is out of range (" + std::to_string(kArgon2MinMemoryKib) + " to " +
                                  std::to_string(kArgon2MaxMemoryKib) + ")");
  }
  KdfParams params{
      .type = request.type, .hash = "", .memory_kib = request.max_memory_kib, .parallel = request.parallel};
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus > 0) params.parallel = std::min(params.parallel, static_cast<uint32_t>(cpus));
  if (const auto cap = memory_cap_kib(); cap && params.memory_kib > *cap) {
    params.memory_kib = static_cast<uint32_t>(*cap);
  }
  if (request.force_iterations) {
    // As cryptsetup --pbkdf-force-iterations: no benchmark, the memory cap is the memory cost.
    if (*request.force_iterations < kArgon2MinTime) {
      return Error(Errc::usage, "forced iteration count " + std::to_string(*request.force_iterations) +
                                    " is too low for " + name + " (minimum " + std::to_string(kArgon2MinTime) + ")");
    }
    params.iterations = *request.force_iterations;
    return params;
  }
  return benchmark_argon2(std::move(params), request, key_size);
}

}  // namespace

Result<KdfParams> choose_kdf_params(const KdfRequest& request, size_t key_size) {
  if (key_size == 0) return Error(Errc::usage, "kdf benchmark: key size is 0");
  if (!request.force_iterations && request.iter_time_ms == 0) {
    return Error(Errc::usage, "kdf benchmark: iteration time must be at least 1 ms");
  }
  if (request.type == KdfType::pbkdf2) return choose_pbkdf2(request, key_size);
  return choose_argon2(request, key_size);
}

}  // namespace rbdluks
