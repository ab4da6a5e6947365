// Helpers the unit tests share: a temporary directory that removes itself, shell commands (the peer
// tools cryptsetup, qemu-img and Python) with their output, files as bytes, bytes as text, skipping
// a test for want of a tool (a failure in CI), and a check that a call blocks until something else
// happens.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rbdluks {

// A fresh directory under the system's temporary directory, removed with its contents at the end.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Runs a shell command; returns its exit status (-1 when it did not exit normally), with its stdout
// and stderr together in *output.
int run(const std::string& command, std::string* output = nullptr);

// For ASSERT_TRUE/EXPECT_TRUE: success when the shell command exits 0, else a failure that shows the
// command, its exit status and its output.
::testing::AssertionResult succeeds(const std::string& command);

// Writes script to script_file and runs /usr/bin/python3 on it with args (shell words), like run().
int run_python(const std::filesystem::path& script_file, std::string_view script, const std::string& args,
               std::string* output = nullptr);

std::span<const uint8_t> bytes_of(std::string_view text);

// Lowercase, two digits a byte.
std::string hex(std::span<const uint8_t> bytes);

// From the system's CSPRNG (fill_random), for keys and salts.
std::vector<uint8_t> random_bytes(size_t size);
// From rng, so a failing run can be repeated.
std::vector<uint8_t> random_bytes(std::mt19937_64& rng, size_t size);

// Creates or replaces the file.
void write_file(const std::filesystem::path& path, std::span<const uint8_t> bytes);
std::vector<uint8_t> read_file(const std::filesystem::path& path);
// Up to size bytes from offset (fewer at the end of the file).
std::vector<uint8_t> read_bytes(const std::filesystem::path& path, uint64_t offset, size_t size);
// Overwrites bytes of an existing file in place.
void write_bytes(const std::filesystem::path& path, uint64_t offset, std::span<const uint8_t> bytes);
// Creates or replaces the file with size bytes of holes.
void make_sparse_file(const std::filesystem::path& path, uint64_t size);

// Whether RBDLUKS_REQUIRE_ALL=1 is set, as deploy/run-tests.sh (CI) sets it: the machine has every
// tool and service the tests use, so a test that finds one missing must fail, not skip.
bool require_all();

// For a test (or its SetUp) that needs what a machine may lack, such as a peer tool or a running
// service: when `available` is false, skips the test, or fails it under RBDLUKS_REQUIRE_ALL=1.
#define RBDLUKS_SKIP_UNLESS(available, what)                                                 \
  do {                                                                                       \
    if (!(available)) {                                                                      \
      if (::rbdluks::require_all()) {                                                        \
        GTEST_FAIL() << (what) << " (RBDLUKS_REQUIRE_ALL=1: a missing tool fails the test)"; \
      }                                                                                      \
      GTEST_SKIP() << (what);                                                                \
    }                                                                                        \
  } while (0)

// Runs blocking() in a thread of its own and checks that it waits for unblock(), which runs in this
// thread, by order rather than by time: the thread must be seen asleep in a futex wait (what every
// mutex and condition variable waits in) before blocking() has returned, and blocking() must return
// only after unblock() has begun. So a call that returns without waiting fails however late its
// thread got to run, and so does one that is merely slow: computing or sleeping is no futex wait.
void expect_blocks_until(const std::function<void()>& blocking, const std::function<void()>& unblock);

}  // namespace rbdluks
