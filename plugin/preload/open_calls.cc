// librbd's open and close functions, as the preload library defines them.
//
// Every open goes to librbd first. An image that did not opt in (preload_config.h) is returned as
// librbd opened it, and nothing else of this library touches its calls. An opted-in image is opened
// a second time through rbd-luks, with its key; the application gets an EncryptedImage, which keeps
// librbd's handle for the calls that mean the same on the ciphertext.
#include <rados/librados.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "completion.h"
#include "encrypted_image.h"
#include "keyring.h"
#include "preload_config.h"
#include "real_librbd.h"

namespace rbdluks::preload {
namespace {

const auto real_close = RBDLUKS_REAL_LIBRBD(rbd_close);
const auto real_metadata_get = RBDLUKS_REAL_LIBRBD(rbd_metadata_get);
const auto real_get_name = RBDLUKS_REAL_LIBRBD(rbd_get_name);

// librbd's C calls that fill a caller's buffer answer -ERANGE with the length they need (which
// may grow between two calls).
template <typename Call>
int string_from(Call call, std::string& out) {
  std::vector<char> buffer(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    size_t length = buffer.size();
    const int r = call(buffer.data(), &length);
    if (r == -ERANGE) {
      buffer.resize(std::max(length, buffer.size() * 2));
      continue;
    }
    if (r < 0) return r;
    out.assign(buffer.data(), strnlen(buffer.data(), buffer.size()));
    return 0;
  }
  return -ERANGE;
}

// Metadata `key` of the image into `value`; 0, -ENOENT when absent, or librbd's error.
int metadata(rbd_image_t raw, const char* key, std::string& value) {
  return string_from([&](char* out, size_t* length) { return real_metadata_get(raw, key, out, length); }, value);
}

// POOL[/NAMESPACE]/IMAGE, as the settings file names images.
std::string spec_of(rados_ioctx_t io, const std::string& name) {
  char pool[256] = {};
  char name_space[256] = {};
  rados_ioctx_get_pool_name(io, pool, sizeof pool - 1);
  rados_ioctx_get_namespace(io, name_space, sizeof name_space - 1);
  return std::string(pool) + (name_space[0] != '\0' ? "/" + std::string(name_space) : "") + "/" + name;
}

// 1 when the image opted in, 0 when not, or librbd's error reading its metadata: an error must
// not pass an opted-in image through as ciphertext, where the application would write plaintext
// over its header.
int opted_in(rbd_image_t raw, const std::string& spec, const PreloadConfig& config) {
  for (const std::string& listed : config.images) {
    if (listed == spec) return 1;
  }
  std::string value;
  const int r = metadata(raw, kPreloadMetadataKey, value);
  if (r == -ENOENT) return 0;
  if (r < 0) return r;
  return value == kPreloadMetadataOn ? 1 : 0;
}

// Key references a hypervisor follows unless the settings say otherwise: whoever can write an
// image's metadata chooses its reference, and a file: reference would name any path on the host.
constexpr const char* kDefaultAcceptedKeyRefs = "config-key,barbican";

Result<std::unique_ptr<Image>> open_plaintext(rados_ioctx_t io, rbd_image_t raw, const std::string& name,
                                              const Image::OpenOptions& options, const PreloadConfig& config) {
  if (!config.error.empty()) return Error(Errc::usage, config.error);
  std::string reference;
  const int r = metadata(raw, kKeyRefMetadataKey, reference);
  if (r < 0 && r != -ENOENT) {
    return Error(std::error_code(-r, std::generic_category()), "read the key reference of " + name);
  }
  if (config.passphrase_file && r == -ENOENT) {
    return Image::open_with_passphrase_file(io, name, *config.passphrase_file, options);
  }
  return Image::open_with_stored_key(io, name, options, config.accept_key_refs.value_or(kDefaultAcceptedKeyRefs));
}

// Turns librbd's handle `raw` of a fresh open into the application's handle.
int adopt(rados_ioctx_t io, rbd_image_t raw, const char* snapshot, bool read_only, rbd_image_t* image) {
  std::string name;
  int r = string_from([&](char* out, size_t* length) { return real_get_name(raw, out, length); }, name);
  const PreloadConfig& config = preload_config();
  const std::string spec = spec_of(io, name);
  if (r == 0) r = opted_in(raw, spec, config);
  if (r < 0) {
    std::fprintf(stderr, "rbd-luks preload: cannot tell whether %s is to be decrypted: %s\n", spec.c_str(),
                 std::generic_category().message(-r).c_str());
    real_close(raw);
    return r;
  }
  if (r == 0) {
    *image = raw;
    return 0;
  }
  Image::OpenOptions options;
  if (snapshot != nullptr) options.snapshot = snapshot;
  options.read_only = read_only;
  auto opened = open_plaintext(io, raw, name, options, config);
  if (!opened) {
    std::fprintf(stderr, "rbd-luks preload: cannot open the encrypted image %s: %s\n", spec.c_str(),
                 opened.error().message().c_str());
    real_close(raw);
    return negative_errno(opened.error());
  }
  if (!read_only) {
    // `rbd-luks reencrypt --online` then runs here; librbd's handle `raw` does no I/O.
    if (auto followed = (*opened)->follow_reencrypt_requests(1); !followed) {
      std::fprintf(stderr, "rbd-luks preload: %s: online reencryption requests will not be followed: %s\n",
                   spec.c_str(), followed.error().message().c_str());
    }
  }
  auto* encrypted = new EncryptedImage;
  encrypted->image = std::move(*opened);
  encrypted->raw = raw;
  register_encrypted_image(encrypted);
  *image = encrypted;
  return 0;
}

int close_encrypted(EncryptedImage* encrypted) {
  unregister_encrypted_image(encrypted);
  const Status closed = encrypted->image->close();
  real_close(encrypted->raw);
  delete encrypted;
  if (closed) return 0;
  std::fprintf(stderr, "rbd-luks preload: %s\n", closed.error().message().c_str());
  return negative_errno(closed.error());
}

template <typename RealOpen>
int open_with(RealOpen real, rados_ioctx_t io, const char* name_or_id, rbd_image_t* image, const char* snapshot,
              bool read_only) {
  rbd_image_t raw = nullptr;
  if (const int r = real(io, name_or_id, &raw, snapshot); r < 0) return r;
  return adopt(io, raw, snapshot, read_only, image);
}

// The asynchronous opens: the same work on a thread of their own, which completes c. (librbd's
// asynchronous open would have to block one of its threads on the key derivation.)
template <typename RealOpen>
int aio_open_with(RealOpen real, rados_ioctx_t io, const char* name_or_id, rbd_image_t* image, const char* snapshot,
                  bool read_only, rbd_completion_t c) {
  claim(c);
  std::string which = name_or_id != nullptr ? name_or_id : "";
  std::optional<std::string> snap = snapshot != nullptr ? std::optional<std::string>(snapshot) : std::nullopt;
  std::thread([=, which = std::move(which), snap = std::move(snap)] {
    rbd_image_t opened = nullptr;
    const int r = open_with(real, io, which.c_str(), &opened, snap ? snap->c_str() : nullptr, read_only);
    if (r == 0) *image = opened;
    finish(c, r, nullptr);
  }).detach();
  return 0;
}

}  // namespace
}  // namespace rbdluks::preload

using rbdluks::preload::aio_open_with;
using rbdluks::preload::close_encrypted;
using rbdluks::preload::encrypted_image;
using rbdluks::preload::open_with;

extern "C" {

int rbd_open(rados_ioctx_t io, const char* name, rbd_image_t* image, const char* snap_name) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_open);
  return open_with(real, io, name, image, snap_name, snap_name != nullptr);
}

int rbd_open_by_id(rados_ioctx_t io, const char* id, rbd_image_t* image, const char* snap_name) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_open_by_id);
  return open_with(real, io, id, image, snap_name, snap_name != nullptr);
}

int rbd_open_read_only(rados_ioctx_t io, const char* name, rbd_image_t* image, const char* snap_name) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_open_read_only);
  return open_with(real, io, name, image, snap_name, true);
}

int rbd_open_by_id_read_only(rados_ioctx_t io, const char* id, rbd_image_t* image, const char* snap_name) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_open_by_id_read_only);
  return open_with(real, io, id, image, snap_name, true);
}

int rbd_aio_open(rados_ioctx_t io, const char* name, rbd_image_t* image, const char* snap_name, rbd_completion_t c) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_open);
  return aio_open_with(real, io, name, image, snap_name, snap_name != nullptr, c);
}

int rbd_aio_open_by_id(rados_ioctx_t io, const char* id, rbd_image_t* image, const char* snap_name,
                       rbd_completion_t c) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_open_by_id);
  return aio_open_with(real, io, id, image, snap_name, snap_name != nullptr, c);
}

int rbd_aio_open_read_only(rados_ioctx_t io, const char* name, rbd_image_t* image, const char* snap_name,
                           rbd_completion_t c) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_open_read_only);
  return aio_open_with(real, io, name, image, snap_name, true, c);
}

int rbd_aio_open_by_id_read_only(rados_ioctx_t io, const char* id, rbd_image_t* image, const char* snap_name,
                                 rbd_completion_t c) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_open_by_id_read_only);
  return aio_open_with(real, io, id, image, snap_name, true, c);
}

int rbd_close(rbd_image_t image) {
  if (auto* encrypted = encrypted_image(image)) return close_encrypted(encrypted);
  return rbdluks::preload::real_close(image);
}

int rbd_aio_close(rbd_image_t image, rbd_completion_t c) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_aio_close);
  auto* encrypted = encrypted_image(image);
  if (encrypted == nullptr) return real(image, c);
  rbdluks::preload::claim(c);
  std::thread([encrypted, c] { rbdluks::preload::finish(c, close_encrypted(encrypted), nullptr); }).detach();
  return 0;
}

}  // extern "C"
