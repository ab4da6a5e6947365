// cipher_bench: AES-XTS throughput of every backend this CPU supports and of OpenSSL's EVP
// aes-128-xts / aes-256-xts, encrypting and decrypting a buffer of 4 KiB sectors in place.
// Then the write path's shape: 4 MiB pieces encrypted out of place from memory that is not in cache
// into a bounce buffer that is, next to memcpy of the same bytes (what plain librbd spends on them).
//
// Our backends get one call per buffer, as the data path makes. OpenSSL is driven the way dm-crypt-like
// users drive it: one EVP_CIPHER_CTX, re-initialised with each sector's IV. After the usual output,
// a summary compares each of our backends with OpenSSL at the same key size, from the medians when
// run with --benchmark_repetitions (noisy machines: use 5 or more).
//
//   cipher_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "xts_cipher.h"

namespace rbdluks {
namespace {

constexpr size_t kSector = 4096;
constexpr size_t kBufferSizes[] = {size_t{1} << 20, kSector};

std::vector<uint8_t> random_bytes(size_t size) {
  std::mt19937_64 rng(size);
  std::vector<uint8_t> out(size);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

// Counts bytes in SI units (GB/s = 10^9 bytes per second), next to the library's binary ones.
void count_bytes(benchmark::State& state, size_t buffer_size) {
  const auto bytes = static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(buffer_size);
  state.SetBytesProcessed(bytes);
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(buffer_size) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

void bench_backend(benchmark::State& state, CipherBackend backend, size_t key_size, bool encrypt, size_t buffer_size) {
  auto cipher = make_xts_cipher(random_bytes(key_size), backend);
  if (!cipher.ok()) {
    state.SkipWithError(cipher.error().message().c_str());
    return;
  }
  std::vector<uint8_t> buffer = random_bytes(buffer_size);
  for (auto _ : state) {
    encrypt ? (*cipher)->encrypt(buffer, kSector, 8) : (*cipher)->decrypt(buffer, kSector, 8);
    benchmark::DoNotOptimize(buffer.data());
    benchmark::ClobberMemory();
  }
  count_bytes(state, buffer_size);
}

void bench_openssl(benchmark::State& state, size_t key_size, bool encrypt, size_t buffer_size) {
  const EVP_CIPHER* type = key_size == 64 ? EVP_aes_256_xts() : EVP_aes_128_xts();
  const std::vector<uint8_t> key = random_bytes(key_size);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr || EVP_CipherInit_ex(ctx, type, nullptr, key.data(), nullptr, encrypt ? 1 : 0) != 1) {
    state.SkipWithError("OpenSSL refused the XTS key");
    EVP_CIPHER_CTX_free(ctx);
    return;
  }
  std::vector<uint8_t> buffer = random_bytes(buffer_size);
  uint8_t iv[16] = {};
  bool failed = false;
  for (auto _ : state) {
    for (size_t offset = 0; offset < buffer.size(); offset += kSector) {
      const uint64_t sector_iv = 8 + offset / 512;
      for (int b = 0; b < 8; ++b) iv[b] = static_cast<uint8_t>(sector_iv >> (8 * b));
      int out_size = 0;
      failed |= EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, iv, -1) != 1;
      failed |= EVP_CipherUpdate(ctx, buffer.data() + offset, &out_size, buffer.data() + offset, kSector) != 1;
    }
    benchmark::DoNotOptimize(buffer.data());
    benchmark::ClobberMemory();
  }
  EVP_CIPHER_CTX_free(ctx);
  if (failed) state.SkipWithError("OpenSSL XTS call failed");
  count_bytes(state, buffer_size);
}

// The data path's two shapes, 4 MiB at a time. Writes: the source walks a 256 MiB ring of
// "application buffers", so every piece comes from DRAM, into one reused 4 MiB buffer (in cache).
// Reads: the source is one reused 4 MiB buffer (what librbd just received, so in cache), and the
// destination walks the ring, so every store goes to memory that is not in cache.
constexpr size_t kColdRing = size_t{256} << 20;
constexpr size_t kPiece = size_t{4} << 20;

enum class ColdSide { source, destination };

class PageBuffer {
 public:
  explicit PageBuffer(size_t size) : data_(static_cast<uint8_t*>(std::aligned_alloc(4096, size))), size_(size) {
    const std::vector<uint8_t> bytes = random_bytes(size);
    std::memcpy(data_.get(), bytes.data(), size);
  }
  std::span<uint8_t> span() const { return {data_.get(), size_}; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t size_;
};

void bench_cold(benchmark::State& state, std::optional<CipherBackend> backend, ColdSide cold) {
  std::unique_ptr<XtsCipher> cipher;
  if (backend) {
    auto made = make_xts_cipher(random_bytes(64), *backend);
    if (!made.ok()) {
      state.SkipWithError(made.error().message().c_str());
      return;
    }
    cipher = std::move(made).value();
  }
  // Page-aligned, as the data path's buffers mostly are (std::vector's large blocks are not).
  PageBuffer ring(kColdRing);
  PageBuffer hot(kPiece);
  size_t at = 0;
  for (auto _ : state) {
    const std::span<uint8_t> far = ring.span().subspan(at, kPiece);
    const std::span<const uint8_t> from = cold == ColdSide::source ? far : hot.span();
    const std::span<uint8_t> to = cold == ColdSide::source ? hot.span() : far;
    if (!cipher) {
      std::memcpy(to.data(), from.data(), kPiece);
    } else if (cold == ColdSide::source) {
      cipher->encrypt(from, to, kSector, at / 512);
    } else {
      cipher->decrypt(from, to, kSector, at / 512);
    }
    benchmark::DoNotOptimize(to.data());
    benchmark::ClobberMemory();
    at = (at + kPiece) % kColdRing;
  }
  count_bytes(state, kPiece);
}

std::string cipher_name(size_t key_size) { return key_size == 64 ? "aes-256-xts" : "aes-128-xts"; }
std::string direction(bool encrypt) { return encrypt ? "encrypt" : "decrypt"; }
std::string buffer_name(size_t size) {
  return size >= (1 << 20) ? std::to_string(size >> 20) + "MiB" : std::to_string(size >> 10) + "KiB";
}

void register_all() {
  for (const size_t buffer_size : kBufferSizes) {
    for (const size_t key_size : {64, 32}) {
      for (const bool encrypt : {true, false}) {
        const std::string suffix = cipher_name(key_size) + "/" + direction(encrypt) + "/" + buffer_name(buffer_size);
        benchmark::RegisterBenchmark(("openssl/" + suffix).c_str(), bench_openssl, key_size, encrypt, buffer_size);
        for (const CipherBackend backend : supported_cipher_backends()) {
          benchmark::RegisterBenchmark((std::string(cipher_backend_id(backend)) + "/" + suffix).c_str(), bench_backend,
                                       backend, key_size, encrypt, buffer_size);
        }
      }
    }
  }
  benchmark::RegisterBenchmark("memcpy/cold-source/4MiB", bench_cold, std::nullopt, ColdSide::source);
  benchmark::RegisterBenchmark("memcpy/cold-destination/4MiB", bench_cold, std::nullopt, ColdSide::destination);
  for (const CipherBackend backend : supported_cipher_backends()) {
    const std::string prefix = std::string(cipher_backend_id(backend)) + "/aes-256-xts/";
    benchmark::RegisterBenchmark((prefix + "encrypt-cold-source/4MiB").c_str(), bench_cold, backend, ColdSide::source);
    benchmark::RegisterBenchmark((prefix + "decrypt-cold-destination/4MiB").c_str(), bench_cold, backend,
                                 ColdSide::destination);
  }
}

// The console output, then each backend's median speed against OpenSSL's for the same cipher,
// direction and buffer.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  SummaryReporter() : ConsoleReporter(OO_None) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      const bool usable = run.run_type == Run::RT_Aggregate ? run.aggregate_name == "median" : !run.error_occurred;
      const auto rate = run.counters.find("GB/s");
      if (!usable || rate == run.counters.end()) continue;
      const std::string& name = run.run_name.function_name;
      if (!gbps_.contains(name)) order_.push_back(name);
      gbps_[name] = rate->second.value;  // a median comes after its repetitions and replaces them
    }
  }

  void Finalize() override {
    std::printf("\n%-50s %10s %12s\n", "backend/cipher/direction/buffer", "GB/s", "x OpenSSL");
    for (const std::string& name : order_) {
      const double gbps = gbps_[name];
      const auto reference = gbps_.find("openssl/" + name.substr(name.find('/') + 1));
      if (name.starts_with("openssl/") || reference == gbps_.end()) {
        std::printf("%-50s %10.2f\n", name.c_str(), gbps);
      } else {
        std::printf("%-50s %10.2f %12.2f\n", name.c_str(), gbps, gbps / reference->second);
      }
    }
    ConsoleReporter::Finalize();
  }

 private:
  std::vector<std::string> order_;  // as reported, which is as registered
  std::map<std::string, double> gbps_;
};

}  // namespace
}  // namespace rbdluks

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  rbdluks::register_all();
  rbdluks::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
