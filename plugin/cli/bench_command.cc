// `bench crypto`: which cipher backend runs and how fast it encrypts and decrypts per sector size;
// and the entry point of `bench` (`bench io` is in bench_io.cc).
#include <chrono>
#include <cstdio>
#include <vector>

#include "commands.h"
#include "random.h"
#include "secure_buffer.h"
#include "xts_cipher.h"

namespace rbdluks::cli {
namespace {

// GB/s of one cipher direction over a buffer, repeated for about `seconds`.
template <typename Op>
double measure(Op op, size_t bytes, double seconds) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  size_t rounds = 0;
  double elapsed = 0;
  do {
    op();
    ++rounds;
    elapsed = std::chrono::duration<double>(clock::now() - start).count();
  } while (elapsed < seconds);
  return static_cast<double>(rounds * bytes) / elapsed / 1e9;
}

Status bench_crypto(const CommandLine& cl) {
  RL_ASSIGN(const auto given, cl.get_number("seconds"));
  const double seconds = given.value_or(0.5);
  if (seconds <= 0 || seconds > 60) return Error(Errc::usage, "--seconds must be between 0 and 60");
  std::vector<uint8_t> buffer(4u << 20);
  RL_TRY(fill_random(buffer));
  std::printf("%-10s %-8s %8s %12s %12s\n", "cipher", "key bits", "sector", "encrypt GB/s", "decrypt GB/s");
  for (size_t key_bytes : {64u, 32u}) {
    SecureBuffer key(key_bytes);
    RL_TRY(fill_random(key.span()));
    RL_ASSIGN(auto cipher, make_xts_cipher(key.span()));
    if (key_bytes == 64) std::printf("backend: %s\n", std::string(cipher->backend_name()).c_str());
    for (size_t sector : {512u, 1024u, 2048u, 4096u}) {
      const double enc = measure([&] { cipher->encrypt(buffer, sector, 0); }, buffer.size(), seconds);
      const double dec = measure([&] { cipher->decrypt(buffer, sector, 0); }, buffer.size(), seconds);
      std::printf("%-10s %-8zu %8zu %12.2f %12.2f\n", "aes-xts", key_bytes * 8, sector, enc, dec);
    }
  }
  return {};
}

}  // namespace

Status cmd_bench(const CommandLine& cl, const Args& args) {
  if (args.size() == 1 && args[0] == "crypto") return bench_crypto(cl);
  if (!args.empty() && args[0] == "io") return bench_io(cl, args);
  return Error(Errc::usage, "usage: rbd-luks bench crypto [--seconds S] | bench io [POOL] [options]");
}

}  // namespace rbdluks::cli
