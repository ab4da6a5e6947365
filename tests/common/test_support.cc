// Helpers the unit tests share (see test_support.h).
#include "test_support.h"

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <thread>

#include "random.h"

namespace rbdluks {

namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "rbdluks-unit.XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << pattern << " failed";
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

int run(const std::string& command, std::string* output) {
  FILE* pipe = popen(("{ " + command + "\n} 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  std::string text;
  char chunk[4096];
  size_t n = 0;
  while ((n = fread(chunk, 1, sizeof chunk, pipe)) > 0) text.append(chunk, n);
  const int status = pclose(pipe);
  if (output != nullptr) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

::testing::AssertionResult succeeds(const std::string& command) {
  std::string output;
  const int status = run(command, &output);
  if (status == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << command << "\nexited " << status << ":\n" << output;
}

int run_python(const fs::path& script_file, std::string_view script, const std::string& args, std::string* output) {
  write_file(script_file, bytes_of(script));
  return run("/usr/bin/python3 " + script_file.string() + " " + args, output);
}

std::span<const uint8_t> bytes_of(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

std::string hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

std::vector<uint8_t> random_bytes(size_t size) {
  std::vector<uint8_t> bytes(size);
  EXPECT_TRUE(fill_random(bytes).ok());
  return bytes;
}

std::vector<uint8_t> random_bytes(std::mt19937_64& rng, size_t size) {
  std::vector<uint8_t> bytes(size);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

void write_file(const fs::path& path, std::span<const uint8_t> bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<uint8_t> read_bytes(const fs::path& path, uint64_t offset, size_t size) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::vector<uint8_t> out(size);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(size));
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

void write_bytes(const fs::path& path, uint64_t offset, std::span<const uint8_t> bytes) {
  std::fstream out(path, std::ios::binary | std::ios::in | std::ios::out);
  out.seekp(static_cast<std::streamoff>(offset));
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void make_sparse_file(const fs::path& path, uint64_t size) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).close();
  fs::resize_file(path, size);
}

bool require_all() {
  const char* value = std::getenv("RBDLUKS_REQUIRE_ALL");
  return value != nullptr && std::string_view(value) == "1";
}

namespace {

// The system call thread `tid` of this process is in, or -1 while it runs in user space.
long current_syscall(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long number = -1;
  return in >> number ? number : -1;  // "running" reads as no number
}

}  // namespace

void expect_blocks_until(const std::function<void()>& blocking, const std::function<void()>& unblock) {
  using namespace std::chrono_literals;
  std::atomic<pid_t> tid{0};
  std::atomic<bool> unblocking{false};
  std::atomic<bool> returned{false};
  std::atomic<bool> returned_before_unblock{false};
  std::thread waiter([&] {
    tid = gettid();
    blocking();
    returned_before_unblock = !unblocking;
    returned = true;
  });
  // Asleep in a futex wait, and still there a moment later: not just passing through a lock.
  bool waits = false;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!waits && !returned && std::chrono::steady_clock::now() < deadline) {
    const bool in_futex = tid != 0 && current_syscall(tid) == SYS_futex;
    std::this_thread::sleep_for(in_futex ? 20ms : 1ms);
    waits = in_futex && !returned && current_syscall(tid) == SYS_futex;
  }
  const bool returned_early = returned;
  EXPECT_FALSE(returned_early) << "returned without waiting";
  EXPECT_TRUE(waits || returned_early) << "neither waited in a futex nor returned within 10 s";
  unblocking = true;
  unblock();
  waiter.join();
  // The order, for a return in the moment between the last look and unblock().
  EXPECT_TRUE(returned_early || !returned_before_unblock) << "returned before unblock() ran";
}

}  // namespace rbdluks
