// real_librbd: see real_librbd.h.
#include "real_librbd.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

namespace rbdluks::preload {

void* real_librbd_symbol(const char* name) {
  // RTLD_NOLOAD: the librbd this process already has, not a second copy.
  static void* const librbd = dlopen("librbd.so.1", RTLD_NOW | RTLD_NOLOAD);
  void* symbol = librbd != nullptr ? dlsym(librbd, name) : nullptr;
  if (symbol == nullptr) {
    // NOLINTNEXTLINE(concurrency-mt-unsafe): glibc keeps dlerror's message per thread.
    std::fprintf(stderr, "rbd-luks preload: librbd.so.1 has no %s: %s\n", name, dlerror());
    std::abort();
  }
  return symbol;
}

}  // namespace rbdluks::preload
