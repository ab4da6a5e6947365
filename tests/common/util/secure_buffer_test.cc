// SecureBuffer: ownership, zeroing and constant-time comparison.
#include "secure_buffer.h"

#include <gtest/gtest.h>

#include <cstring>

namespace rbdluks {
namespace {

TEST(SecureBuffer, StartsZeroedAndCopies) {
  SecureBuffer zero(33);
  ASSERT_EQ(zero.size(), 33u);
  for (size_t i = 0; i < zero.size(); ++i) EXPECT_EQ(zero[i], 0);

  const uint8_t bytes[] = {1, 2, 3};
  SecureBuffer copy = SecureBuffer::copy_of(std::span<const uint8_t>(bytes));
  EXPECT_TRUE(copy.equals(bytes));
  const uint8_t other[] = {1, 2, 4};
  EXPECT_FALSE(copy.equals(other));
  EXPECT_FALSE(copy.equals(std::span<const uint8_t>(bytes, 2)));
}

TEST(SecureBuffer, MoveLeavesSourceEmpty) {
  SecureBuffer a = SecureBuffer::copy_of(std::string_view("secret"));
  SecureBuffer b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from state on purpose
  EXPECT_EQ(b.size(), 6u);
  EXPECT_EQ(std::memcmp(b.data(), "secret", 6), 0);
}

TEST(SecureBuffer, ShrinkZeroesTail) {
  SecureBuffer a = SecureBuffer::copy_of(std::string_view("abcdef"));
  uint8_t* raw = a.data();
  a.shrink(2);
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(raw[2], 0);
  EXPECT_EQ(raw[5], 0);
}

}  // namespace
}  // namespace rbdluks
