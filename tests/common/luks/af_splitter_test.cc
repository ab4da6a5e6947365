// AF splitter: round trips, cryptsetup's diffusion checked against an independent Python AF_merge,
// the anti-forensic property (one damaged stripe loses the key), and errors.
#include "af_splitter.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "test_support.h"

namespace rbdluks {
namespace {

TEST(AfSplitter, RoundTripsForLuksKeySizesAndHashes) {
  for (const size_t key_size : {32, 64}) {
    for (const char* hash : {"sha1", "sha256", "sha512"}) {
      const std::vector<uint8_t> key = random_bytes(key_size);
      std::vector<uint8_t> split(af_split_size(key_size, 4000));
      ASSERT_TRUE(af_split(key, 4000, hash, split).ok()) << hash;
      std::vector<uint8_t> merged(key_size);
      ASSERT_TRUE(af_merge(split, 4000, hash, merged).ok()) << hash;
      EXPECT_EQ(merged, key) << key_size << " " << hash;
      // The key itself appears nowhere as a stripe.
      EXPECT_NE(std::vector<uint8_t>(split.end() - key_size, split.end()), key);

      std::vector<uint8_t> again(split.size());
      ASSERT_TRUE(af_split(key, 4000, hash, again).ok());
      EXPECT_NE(again, split) << "stripes must be random";
    }
  }
}

TEST(AfSplitter, OneStripeIsTheKey) {
  const std::vector<uint8_t> key = random_bytes(32);
  std::vector<uint8_t> split(32);
  ASSERT_TRUE(af_split(key, 1, "sha256", split).ok());
  EXPECT_EQ(split, key);
}

TEST(AfSplitter, ADamagedStripeLosesTheKey) {
  const std::vector<uint8_t> key = random_bytes(64);
  std::vector<uint8_t> split(af_split_size(64, 4000));
  ASSERT_TRUE(af_split(key, 4000, "sha256", split).ok());
  split[7] ^= 1;  // first stripe
  std::vector<uint8_t> merged(64);
  ASSERT_TRUE(af_merge(split, 4000, "sha256", merged).ok());
  EXPECT_NE(merged, key);
}

// AF_merge from cryptsetup's lib/luks1/af.c, written from its description with hashlib.
constexpr const char* kPythonMerge = R"(
import hashlib, sys
def diffuse(block, hash_name):
    size = hashlib.new(hash_name).digest_size
    out = b''
    for i in range(0, len(block), size):
        chunk = block[i:i + size]
        out += hashlib.new(hash_name, (i // size).to_bytes(4, 'big') + chunk).digest()[:len(chunk)]
    return out
args = sys.argv[1:]
for k in range(0, len(args), 5):  # hash key_size stripes split_path key_path
    hash_name, key_size, stripes = args[k], int(args[k + 1]), int(args[k + 2])
    split = open(args[k + 3], 'rb').read()
    acc = bytes(key_size)
    for s in range(stripes - 1):
        acc = diffuse(bytes(a ^ b for a, b in zip(acc, split[s * key_size:(s + 1) * key_size])), hash_name)
    last = split[(stripes - 1) * key_size:]
    open(args[k + 4], 'wb').write(bytes(a ^ b for a, b in zip(acc, last)))
)";

TEST(AfSplitter, MergeMatchesIndependentPythonImplementation) {
  TempDir dir;
  struct Case {
    const char* hash;
    size_t key_size;  // sha1 with 32 bytes and sha512 with 32 bytes exercise the truncated last chunk
    std::vector<uint8_t> key;
    std::filesystem::path merged;
  };
  std::vector<Case> cases = {{"sha1", 32, {}, {}}, {"sha256", 64, {}, {}}, {"sha512", 32, {}, {}}};
  std::string args;
  for (size_t n = 0; n < cases.size(); ++n) {
    Case& c = cases[n];
    c.key = random_bytes(c.key_size);
    std::vector<uint8_t> split(af_split_size(c.key_size, 4000));
    ASSERT_TRUE(af_split(c.key, 4000, c.hash, split).ok());
    const std::filesystem::path split_path = dir.path() / ("split" + std::to_string(n));
    c.merged = dir.path() / ("merged" + std::to_string(n));
    write_file(split_path, split);
    args += std::string(" ") + c.hash + " " + std::to_string(c.key_size) + " 4000 " + split_path.string() + " " +
            c.merged.string();
  }
  std::string output;
  ASSERT_EQ(run_python(dir.file("af.py"), kPythonMerge, args, &output), 0) << args << "\n" << output;
  for (const Case& c : cases) EXPECT_EQ(read_file(c.merged), c.key) << c.hash << " " << c.key_size;
}

TEST(AfSplitter, Errors) {
  const std::vector<uint8_t> key = random_bytes(32);
  std::vector<uint8_t> split(af_split_size(32, 10));

  Status st = af_split(key, 10, "md5", split);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.error().is(Errc::unsupported));

  EXPECT_FALSE(af_split(key, 11, "sha256", split).ok());  // wrong output size
  EXPECT_FALSE(af_split(key, 0, "sha256", std::span<uint8_t>()).ok());

  std::vector<uint8_t> merged(32);
  EXPECT_FALSE(af_merge(std::span(split).first(split.size() - 1), 10, "sha256", merged).ok());
  st = af_merge(split, 10, "nohash9", merged);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.error().is(Errc::unsupported));
}

}  // namespace
}  // namespace rbdluks
