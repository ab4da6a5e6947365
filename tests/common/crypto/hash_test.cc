// Hash functions by LUKS name: FIPS 180 / RIPEMD-160 "abc" vectors, multi-part input, and errors.
#include "hash.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_support.h"

namespace rbdluks {
namespace {

std::string digest_hex(std::string_view name, std::span<const std::span<const uint8_t>> parts) {
  auto size = hash_size(name);
  EXPECT_TRUE(size.ok()) << name;
  if (!size) return {};
  std::vector<uint8_t> out(*size);
  const Status st = hash_parts(name, parts, out);
  EXPECT_TRUE(st.ok()) << name;
  return hex(out);
}

TEST(Hash, KnownAnswersForAbc) {
  const struct {
    const char* name;
    size_t size;
    const char* digest;
  } cases[] = {
      {"sha1", 20, "a9993e364706816aba3e25717850c26c9cd0d89d"},
      {"sha224", 28, "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"},
      {"sha256", 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"sha384", 48,
       "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"},
      {"sha512", 64,
       "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
       "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
      {"ripemd160", 20, "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"},
  };
  for (const auto& c : cases) {
    auto size = hash_size(c.name);
    ASSERT_TRUE(size.ok()) << c.name;
    EXPECT_EQ(*size, c.size) << c.name;
    const std::span<const uint8_t> parts[] = {bytes_of("abc")};
    EXPECT_EQ(digest_hex(c.name, parts), c.digest) << c.name;
  }
}

TEST(Hash, PartsAreConcatenated) {
  const std::span<const uint8_t> whole[] = {bytes_of("hello, world")};
  const std::span<const uint8_t> split[] = {bytes_of("hel"), bytes_of(""), bytes_of("lo, wor"), bytes_of("ld")};
  EXPECT_EQ(digest_hex("sha256", whole), digest_hex("sha256", split));
  const std::span<const uint8_t> other[] = {bytes_of("hello, world!")};
  EXPECT_NE(digest_hex("sha256", whole), digest_hex("sha256", other));
}

TEST(Hash, UnknownNameIsUnsupported) {
  auto size = hash_size("md5");
  ASSERT_FALSE(size.ok());
  EXPECT_TRUE(size.error().is(Errc::unsupported));
  EXPECT_NE(size.error().message().find("md5"), std::string::npos);
  EXPECT_FALSE(hash_size("SHA256").ok());  // cryptsetup's names are lower case
}

TEST(Hash, WrongOutputSizeIsAnError) {
  std::vector<uint8_t> out(31);
  const std::span<const uint8_t> parts[] = {bytes_of("abc")};
  EXPECT_FALSE(hash_parts("sha256", parts, out).ok());
}

}  // namespace
}  // namespace rbdluks
