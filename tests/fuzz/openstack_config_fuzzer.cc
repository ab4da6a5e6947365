// libFuzzer harness: the fuzz input is rbd-luks's config file (openstack_settings.h: INI, the
// [barbican] section), read by load_openstack_settings as the Barbican keyring reads it.
//
// The file is a memfd, reached as /proc/self/fd/N, so the real path (stat, read_secret_file, the
// permission check) runs without touching the disk; it is 0600, so a file holding a password is
// not refused before its last line is parsed. No environment variable is consulted: the input
// alone decides, and a crash replays anywhere.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "openstack_settings.h"

namespace {

int config_fd() {
  static const int fd = [] {
    const int created = memfd_create("rbd-luks.conf", MFD_CLOEXEC);
    if (created < 0 || fchmod(created, 0600) != 0) __builtin_trap();
    return created;
  }();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = config_fd();
  if (ftruncate(fd, 0) != 0) __builtin_trap();
  for (size_t done = 0; done < size;) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) __builtin_trap();
    done += static_cast<size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto settings = rbdluks::load_openstack_settings(path, [](const char*) -> const char* { return nullptr; });
  if (settings) static_cast<void>(settings->sources.size());
  return 0;
}
