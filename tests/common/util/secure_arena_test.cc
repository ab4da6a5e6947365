// The secure arena as the kernel sees it: the flags of its mappings in /proc/self/smaps, how much
// memory many small secrets lock (VmLck), a failed mlock reported once (in a forked child without
// CAP_IPC_LOCK and with RLIMIT_MEMLOCK 0), and what a forked child gets of the parent's secrets.
#include "secure_arena.h"

#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "process_memory.h"
#include "secure_buffer.h"

namespace rbdluks {
namespace {

// AddressSanitizer replaces mlock with a call that does nothing and succeeds.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMlockLocks = false;
#else
constexpr bool kMlockLocks = true;
#endif

// The VmFlags of the mapping that holds address, from /proc/self/smaps.
std::set<std::string> vm_flags(const void* address) {
  const auto at = reinterpret_cast<uintptr_t>(address);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t start = 0;
    uintptr_t end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2 && line.find(':') > line.find(' ')) {
      inside = start <= at && at < end;
    } else if (inside && line.starts_with("VmFlags:")) {
      std::istringstream words(line.substr(8));
      return {std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
    }
  }
  return {};
}

bool kernel_wipes_on_fork() {
#ifdef MADV_WIPEONFORK
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const bool supported = madvise(p, 4096, MADV_WIPEONFORK) == 0;
  munmap(p, 4096);
  return supported;
#else
  return false;
#endif
}

TEST(SecureArena, MappingsAreLockedUndumpedAndNotInherited) {
  const SecureBuffer small(32);
  const SecureBuffer large(3 * 4096 + 1);
  for (const SecureBuffer* buffer : {&small, &large}) {
    const auto flags = vm_flags(buffer->data());
    ASSERT_FALSE(flags.empty()) << "no mapping in /proc/self/smaps holds the buffer";
    if (kMlockLocks) {
      EXPECT_TRUE(flags.contains("lo")) << "not locked";
    }
    EXPECT_TRUE(flags.contains("dd")) << "not excluded from core dumps";
    EXPECT_TRUE(flags.contains("dc")) << "not excluded from fork";
    if (kernel_wipes_on_fork()) {
      EXPECT_TRUE(flags.contains("wf")) << "not wiped on fork";
    }
  }
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data()) % 16, 0u);
  EXPECT_EQ(secure_memory_status().lock_error, 0);
}

TEST(SecureArena, ManySmallSecretsShareAFewLockedPages) {
  const auto before = locked_bytes();
  ASSERT_TRUE(before);
  std::vector<SecureBuffer> secrets;
  for (int i = 0; i < 1000; ++i) secrets.emplace_back(32);  // keys of AES-128-XTS
  for (int i = 0; i < 300; ++i) secrets.emplace_back(64);   // keys of AES-256-XTS
  for (int i = 0; i < 100; ++i) secrets.emplace_back(200);  // passphrases
  // 32000 + 19200 + 25600 bytes: 19 pages when packed, 1400 pages at one page each.
  const auto after = locked_bytes();
  ASSERT_TRUE(after);
  const long grown = (static_cast<long>(*after) - static_cast<long>(*before)) / 1024;
  EXPECT_LE(grown, 32 * 4) << "1400 small secrets locked " << grown << " KiB";
  EXPECT_GE(secure_memory_status().locked_bytes, size_t{19} * 4096);
  for (SecureBuffer& secret : secrets) std::memset(secret.data(), 0xa5, secret.size());
}

TEST(SecureArena, AFreedSlotIsZeroedAndReused) {
  const SecureBuffer neighbour(48);  // keeps the page mapped
  uint8_t* slot = nullptr;
  {
    SecureBuffer secret(48);
    slot = secret.data();
    std::memset(slot, 0xa5, 48);
  }
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(slot[i], 0) << "byte " << i << " of the freed slot";
  const SecureBuffer next(60);
  EXPECT_EQ(next.data(), slot);
}

// Clears CAP_IPC_LOCK from the effective set, under which mlock ignores RLIMIT_MEMLOCK.
void drop_ipc_lock() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  syscall(SYS_capget, &header, data);
  data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
  syscall(SYS_capset, &header, data);
}

std::vector<std::string> warnings;
void record_warning(const char* message) { warnings.emplace_back(message); }

// Runs check in a forked child; returns what it wrote to out (empty: all well).
std::string in_child(void (*check)(FILE* out)) {
  int pipe_fds[2];
  EXPECT_EQ(pipe(pipe_fds), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    FILE* out = fdopen(pipe_fds[1], "w");
    check(out);
    std::fclose(out);
    _exit(0);
  }
  close(pipe_fds[1]);
  std::string reported;
  char buffer[512];
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof buffer)) > 0;) reported.append(buffer, static_cast<size_t>(n));
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) reported += " (the child did not exit cleanly)";
  return reported;
}

TEST(SecureArena, AFailedLockIsReportedOnceAndTheMemoryStillWorks) {
  if (!kMlockLocks) GTEST_SKIP() << "mlock cannot fail under AddressSanitizer";
  const std::string problems = in_child([](FILE* out) {
    drop_ipc_lock();
    const rlimit none{0, 0};
    setrlimit(RLIMIT_MEMLOCK, &none);
    set_secure_memory_warning(record_warning);
    SecureBuffer small(32);
    SecureBuffer large(20000);
    SecureBuffer another(3000);
    std::memset(large.data(), 1, large.size());
    const SecureMemoryStatus status = secure_memory_status();
    if (status.lock_error != EPERM && status.lock_error != ENOMEM) {
      std::fprintf(out, "lock_error %d; ", status.lock_error);
    }
    if (status.locked_bytes != 0 || status.unlocked_bytes < 4096 + 20480 + 4096) {
      std::fprintf(out, "locked %zu, unlocked %zu; ", status.locked_bytes, status.unlocked_bytes);
    }
    if (warnings.size() != 1) std::fprintf(out, "%zu warnings; ", warnings.size());
    if (!warnings.empty() && warnings[0].find("RLIMIT_MEMLOCK 0 bytes") == std::string::npos) {
      std::fprintf(out, "warning '%s'; ", warnings[0].c_str());
    }
    if (vm_flags(small.data()).contains("lo")) std::fprintf(out, "locked after all; ");
  });
  EXPECT_EQ(problems, "");
}

TEST(SecureArena, AForkedChildGetsNoneOfTheParentsSecrets) {
  static SecureBuffer parents(32);
  std::memset(parents.data(), 0x5a, parents.size());
  // Reading the parent's secret faults in the child...
  const pid_t pid = fork();
  if (pid == 0) {
    std::signal(SIGSEGV, SIG_DFL);  // not a sanitizer's report: the plain fault
    volatile uint8_t byte = parents[0];
    (void)byte;
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) << "status " << status;
  // ...while freeing it there is harmless, and the child's own secrets work.
  EXPECT_EQ(in_child([](FILE* out) {
              parents = SecureBuffer();
              SecureBuffer own(32);
              std::memset(own.data(), 1, own.size());
              if (kMlockLocks && !vm_flags(own.data()).contains("lo")) {
                std::fprintf(out, "the child's secret is not locked; ");
              }
            }),
            "");
  EXPECT_EQ(parents[0], 0x5a) << "the parent's secret changed";
}

}  // namespace
}  // namespace rbdluks
