// Starts tests/plugin/rbd/rbd_test_client, the second RBD client of the dispatch layer's tests, as
// a process of its own, so the cluster sees another client as it would another host.
#pragma once

#include <spawn.h>
#include <sys/wait.h>

#include <string>
#include <vector>

extern char** environ;

namespace rbdluks::testing {

// The client's pid, or -1 when it could not start.
inline pid_t start_test_client(const std::vector<std::string>& args) {
  std::vector<std::string> words{RBDLUKS_TEST_CLIENT};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  return posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) == 0 ? pid : -1;
}

// Its exit status, or -1 when it did not exit normally.
inline int wait_test_client(pid_t pid) {
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

inline int run_test_client(const std::vector<std::string>& args) { return wait_test_client(start_test_client(args)); }

}  // namespace rbdluks::testing
