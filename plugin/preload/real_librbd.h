// real_librbd: librbd's own definition of a C function, bypassing the preload library's.
//
// The preload library defines librbd's C functions under their names, so a plain call would come
// back to it. Its own calls into librbd go through these pointers, found in the librbd.so.1 that is
// already loaded (the library links it), never through symbol lookup in the global scope.
#pragma once

namespace rbdluks::preload {

// librbd's definition of `name`; aborts with a message if librbd has none (a librbd without a
// function its header declares cannot be served correctly).
void* real_librbd_symbol(const char* name);

template <typename Function>
Function real_librbd(const char* name) {
  return reinterpret_cast<Function>(real_librbd_symbol(name));
}

}  // namespace rbdluks::preload

// librbd's own `name`, typed as librbd.h declares it.
#define RBDLUKS_REAL_LIBRBD(name) ::rbdluks::preload::real_librbd<decltype(&::name)>(#name)
