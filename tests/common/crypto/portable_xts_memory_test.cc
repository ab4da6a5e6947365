// Where the portable (Crypto++) backend keeps its AES key schedules: after keying a cipher and
// running it, no memory of this process that is not locked holds a round key that only key
// expansion produces. The key is FIPS-197's AES-256 example (appendix A.3), whose round key 2 is
// w[8..11] = 9ba35411 8e6925af a51a8b5f 2067fcde; the test searches for it in the byte order of
// Crypto++'s AES-NI schedule and in that of its table-driven one (host-order words). Key and
// pattern exist only in SecureBuffers (locked, so outside the search): they are stored here
// complemented and decoded straight into them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "secure_buffer.h"
#include "xts_cipher.h"

namespace rbdluks {
namespace {

// ~byte of FIPS-197 A.3's key, then of 32 more bytes for the tweak key.
constexpr uint8_t kComplementedKey[64] = {
    0x9f, 0xc2, 0x14, 0xef, 0xea, 0x35, 0x8e, 0x41, 0xd4, 0x8c, 0x51, 0x0f, 0x7a, 0x82, 0x88, 0x7e,
    0xe0, 0xca, 0xd3, 0xf8, 0xc4, 0x9e, 0xf7, 0x28, 0xd2, 0x67, 0xef, 0x5c, 0xf6, 0xeb, 0x20, 0x0b,
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0,
};
// ~byte of w[8..11], as bytes in FIPS order.
constexpr uint8_t kComplementedRoundKey[16] = {0x64, 0x5c, 0xab, 0xee, 0x71, 0x96, 0xda, 0x50,
                                               0x5a, 0xe5, 0x74, 0xa0, 0xdf, 0x98, 0x03, 0x21};

SecureBuffer complemented(std::span<const uint8_t> bytes) {
  SecureBuffer out(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) out[i] = static_cast<uint8_t>(~bytes[i]);
  return out;
}

// The same 16 bytes with each 4-byte word reversed: a big-endian word stored on this host.
SecureBuffer word_swapped(const SecureBuffer& bytes) {
  SecureBuffer out(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i) out[i] = bytes[i / 4 * 4 + 3 - i % 4];
  return out;
}

struct Region {
  uintptr_t start, end;
  std::string name;
};

// Readable mappings of this process that are not locked (no "lo" in their VmFlags).
std::vector<Region> unlocked_regions() {
  std::vector<Region> regions;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  Region current{};
  bool readable = false;
  while (std::getline(smaps, line)) {
    uintptr_t start = 0;
    uintptr_t end = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s", &start, &end, perms) == 3 && line.find(':') > line.find(' ')) {
      const size_t name_at = line.find('/') != std::string::npos ? line.find('/') : line.find('[');
      current = {start, end, name_at == std::string::npos ? "" : line.substr(name_at)};
      readable = perms[0] == 'r';
    } else if (line.starts_with("VmFlags:") && readable && line.find(" lo") == std::string::npos &&
               current.name != "[vvar]" && current.name != "[vsyscall]") {
      regions.push_back(current);
    }
  }
  return regions;
}

// Where one of the patterns occurs in memory that is not locked: "" if nowhere.
std::string find_unlocked(const std::vector<const SecureBuffer*>& patterns) {
  const int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
  EXPECT_GE(mem, 0);
  std::string found;
  std::vector<uint8_t> chunk(1 << 20);
  for (const Region& region : unlocked_regions()) {
    for (uintptr_t at = region.start; at < region.end && found.empty(); at += chunk.size() - 16) {
      const size_t want = std::min<size_t>(chunk.size(), region.end - at);
      const ssize_t got = pread(mem, chunk.data(), want, static_cast<off_t>(at));
      if (got <= 0) break;
      for (const SecureBuffer* pattern : patterns) {
        const void* hit = memmem(chunk.data(), static_cast<size_t>(got), pattern->data(), pattern->size());
        if (hit == nullptr) continue;
        char where[64];
        std::snprintf(where, sizeof where, "%#lx",
                      at + static_cast<uintptr_t>(static_cast<const uint8_t*>(hit) - chunk.data()));
        found = std::string(where) + " in " + (region.name.empty() ? "an anonymous mapping" : region.name);
        secure_zero(chunk.data(), chunk.size());
        break;
      }
      if (want < chunk.size()) break;
    }
  }
  close(mem);
  return found;
}

TEST(PortableXtsMemory, KeySchedulesStayInLockedMemory) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's terabytes of shadow mappings cannot be searched";
#endif
  const SecureBuffer key = complemented(kComplementedKey);
  const SecureBuffer round_key = complemented(kComplementedRoundKey);
  const SecureBuffer round_key_words = word_swapped(round_key);
  ASSERT_EQ(find_unlocked({&round_key, &round_key_words}), "") << "the search finds itself";

  auto cipher = make_xts_cipher(key.span(), CipherBackend::portable);
  ASSERT_TRUE(cipher) << cipher.error().message();
  std::vector<uint8_t> sectors(2 * 4096, 0x42);
  (*cipher)->encrypt(sectors, 4096, 7);
  (*cipher)->decrypt(sectors, 4096, 7);
  EXPECT_EQ(sectors, std::vector<uint8_t>(2 * 4096, 0x42));

  EXPECT_EQ(find_unlocked({&round_key, &round_key_words}), "")
      << "an AES round key of the cipher is in memory that may be swapped out or dumped";
}

}  // namespace
}  // namespace rbdluks
