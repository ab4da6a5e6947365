// librbd's size, data, cache, notification and encryption functions, as the preload library
// defines them: on an encrypted image they act on the plaintext through rbd-luks; on any other
// image they are librbd's own, called unchanged.
#include <rados/librados.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "completion.h"
#include "encrypted_image.h"
#include "real_librbd.h"

namespace rbdluks::preload {
namespace {

int errno_of(const Status& status) { return status ? 0 : negative_errno(status.error()); }

// The part of [offset, offset + length) inside the plaintext, as librbd's clip_io cuts requests
// that run past the end: an empty request is fine anywhere, one that starts at or past the end is
// -EINVAL.
Result<uint64_t> clipped(EncryptedImage& encrypted, uint64_t offset, uint64_t length) {
  if (length == 0) return uint64_t{0};
  RL_ASSIGN(const uint64_t size, encrypted.image->size());
  if (offset >= size) return Error(std::make_error_code(std::errc::invalid_argument), "request past the end");
  return std::min(length, size - offset);
}

enum class Reports { bytes, zero };

// Submits a request of an encrypted image that completes `c` (completion.h): `start` gets the
// callback to hand to rbd-luks. librbd's completions carry the bytes of a read, but 0 for a
// successful write, discard, write-zeroes or flush, where rbd-luks reports the bytes covered.
template <typename Start>
int submit(EncryptedImage& encrypted, rbd_completion_t c, Reports reports, Start start) {
  claim(c);
  // As librbd decides at submission whether a request goes to the event queue.
  EncryptedImage* notify = encrypted.notifies() ? &encrypted : nullptr;
  const Status submitted =
      start([c, notify, reports](ssize_t r) { finish(c, reports == Reports::zero && r > 0 ? 0 : r, notify); });
  if (submitted) return 0;
  unclaim(c);
  return negative_errno(submitted.error());
}

// A write that must be durable when it completes (LIBRADOS_OP_FLAG_FADVISE_FUA): the write, then a
// flush, then the write's result.
Image::Completion then_flush_if_fua(EncryptedImage& encrypted, int op_flags, Image::Completion done) {
  if ((op_flags & LIBRADOS_OP_FLAG_FADVISE_FUA) == 0) return done;
  return [&encrypted, done = std::move(done)](ssize_t written) {
    if (written < 0) return done(written);
    const Status submitted =
        encrypted.image->aio_flush([done, written](ssize_t flushed) { done(flushed < 0 ? flushed : written); });
    if (!submitted) done(negative_errno(submitted.error()));
  };
}

int aio_read_on(EncryptedImage& encrypted, uint64_t off, size_t len, char* buf, rbd_completion_t c) {
  return submit(encrypted, c, Reports::bytes, [&](auto done) {
    return encrypted.image->aio_read(off, std::span(reinterpret_cast<uint8_t*>(buf), len), std::move(done));
  });
}

int aio_write_on(EncryptedImage& encrypted, uint64_t off, size_t len, const char* buf, rbd_completion_t c,
                 int op_flags) {
  return submit(encrypted, c, Reports::zero, [&](auto done) {
    return encrypted.image->aio_write(off, std::span(reinterpret_cast<const uint8_t*>(buf), len),
                                      then_flush_if_fua(encrypted, op_flags, std::move(done)));
  });
}

ssize_t read_sync(EncryptedImage& encrypted, uint64_t offset, size_t length, char* buffer) {
  auto n = clipped(encrypted, offset, length);
  if (!n) return negative_errno(n.error());
  const Status read = encrypted.image->read(offset, std::span(reinterpret_cast<uint8_t*>(buffer), *n));
  return read ? static_cast<ssize_t>(*n) : negative_errno(read.error());
}

ssize_t write_sync(EncryptedImage& encrypted, uint64_t offset, size_t length, const char* buffer, int op_flags) {
  auto n = clipped(encrypted, offset, length);
  if (!n) return negative_errno(n.error());
  Status written = encrypted.image->write(offset, std::span(reinterpret_cast<const uint8_t*>(buffer), *n));
  if (written && (op_flags & LIBRADOS_OP_FLAG_FADVISE_FUA) != 0) written = encrypted.image->flush();
  return written ? static_cast<ssize_t>(*n) : negative_errno(written.error());
}

int resize_to(EncryptedImage& encrypted, uint64_t size, bool allow_shrink, librbd_progress_fn_t progress, void* arg) {
  const auto current = encrypted.image->size();
  if (!current) return negative_errno(current.error());
  if (size < *current && !allow_shrink) return -EINVAL;
  const int r = errno_of(encrypted.image->resize(size));
  if (r == 0 && progress != nullptr) progress(size, size, arg);
  return r;
}

// The plaintext extents that may hold data, as diff iteration against the image's beginning
// reports them: shifted past the LUKS header and clipped (Image::allocated_extents).
int iterate_allocated(EncryptedImage& encrypted, const char* from_snapshot, uint64_t offset, uint64_t length,
                      int (*callback)(uint64_t, size_t, int, void*), void* arg) {
  if (from_snapshot != nullptr) return unsupported("diff iteration from a snapshot", encrypted);
  auto n = clipped(encrypted, offset, length);
  if (!n) return negative_errno(n.error());
  if (*n == 0) return 0;
  const auto extents = encrypted.image->allocated_extents(offset, *n);
  if (!extents) return negative_errno(extents.error());
  for (const Image::Extent& extent : *extents) {
    if (const int r = callback(extent.offset, extent.length, 1, arg); r < 0) return r;
  }
  return 0;
}

// librbd's snapshot list gives RBD image sizes; the header in front of the data has the same size in
// every snapshot (rbd-luks never moves it), so each plaintext size is that much less, in whole sectors.
void plaintext_snapshot_sizes(EncryptedImage& encrypted, std::span<rbd_snap_info_t> snaps) {
  const uint64_t header = encrypted.image->data_offset();
  const uint64_t sector = encrypted.image->sector_size();
  for (rbd_snap_info_t& snap : snaps) snap.size = snap.size > header ? (snap.size - header) / sector * sector : 0;
}

// librbd's zero flags: RBD_WRITE_ZEROES_FLAG_THICK_PROVISION (QEMU sends it when it may not
// unmap) asks for allocated zeros, so those are written as encrypted zeros; other bits are -EINVAL,
// as librbd has them.
constexpr uint64_t kMaxThickZeroes = uint64_t{64} << 20;

int check_zero_flags(int zero_flags, uint64_t length) {
  if ((zero_flags & ~RBD_WRITE_ZEROES_FLAG_THICK_PROVISION) != 0) return -EINVAL;
  if ((zero_flags & RBD_WRITE_ZEROES_FLAG_THICK_PROVISION) != 0 && length > kMaxThickZeroes) return -EINVAL;
  return 0;
}

bool thick(int zero_flags) { return (zero_flags & RBD_WRITE_ZEROES_FLAG_THICK_PROVISION) != 0; }

int refuse_librbd_encryption(const char* function, EncryptedImage& encrypted) {
  std::fprintf(stderr,
               "rbd-luks preload: %s on %s: the image is decrypted by rbd-luks already "
               "(rbd-luks preload disable turns that off); librbd's encryption must not stack on it\n",
               function, encrypted.image->name().c_str());
  return -EEXIST;
}

}  // namespace
}  // namespace rbdluks::preload

using rbdluks::preload::encrypted_image;
using rbdluks::preload::EncryptedImage;
using rbdluks::preload::errno_of;
using rbdluks::preload::Reports;
using rbdluks::preload::submit;

// Each function: librbd's own unless `image` is an encrypted image's handle.
#define RBDLUKS_ON_ENCRYPTED(name, ...)                     \
  static const auto real = RBDLUKS_REAL_LIBRBD(name);       \
  EncryptedImage* const encrypted = encrypted_image(image); \
  if (encrypted == nullptr) return real(image __VA_OPT__(, ) __VA_ARGS__);

extern "C" {

int rbd_get_size(rbd_image_t image, uint64_t* size) {
  RBDLUKS_ON_ENCRYPTED(rbd_get_size, size)
  const auto plaintext = encrypted->image->size();
  if (!plaintext) return rbdluks::negative_errno(plaintext.error());
  *size = *plaintext;
  return 0;
}

int rbd_stat(rbd_image_t image, rbd_image_info_t* info, size_t infosize) {
  RBDLUKS_ON_ENCRYPTED(rbd_stat, info, infosize)
  if (const int r = real(encrypted->raw, info, infosize); r < 0) return r;
  return rbd_get_size(image, &info->size);
}

int rbd_snap_list(rbd_image_t image, rbd_snap_info_t* snaps, int* max_snaps) {
  RBDLUKS_ON_ENCRYPTED(rbd_snap_list, snaps, max_snaps)
  const int n = real(encrypted->raw, snaps, max_snaps);
  if (n <= 0) return n;
  rbdluks::preload::plaintext_snapshot_sizes(*encrypted, std::span(snaps, static_cast<size_t>(n)));
  return n;
}

int rbd_snap_rollback(rbd_image_t image, const char* snapname) {
  RBDLUKS_ON_ENCRYPTED(rbd_snap_rollback, snapname)
  return errno_of(encrypted->image->snap_rollback(snapname));
}

int rbd_snap_rollback_with_progress(rbd_image_t image, const char* snapname, librbd_progress_fn_t cb, void* cbdata) {
  RBDLUKS_ON_ENCRYPTED(rbd_snap_rollback_with_progress, snapname, cb, cbdata)
  const int r = errno_of(encrypted->image->snap_rollback(snapname));
  if (r == 0 && cb != nullptr) cb(1, 1, cbdata);
  return r;
}

int rbd_resize(rbd_image_t image, uint64_t size) {
  RBDLUKS_ON_ENCRYPTED(rbd_resize, size)
  return rbdluks::preload::resize_to(*encrypted, size, true, nullptr, nullptr);
}

int rbd_resize2(rbd_image_t image, uint64_t size, bool allow_shrink, librbd_progress_fn_t cb, void* cbdata) {
  RBDLUKS_ON_ENCRYPTED(rbd_resize2, size, allow_shrink, cb, cbdata)
  return rbdluks::preload::resize_to(*encrypted, size, allow_shrink, cb, cbdata);
}

int rbd_resize_with_progress(rbd_image_t image, uint64_t size, librbd_progress_fn_t cb, void* cbdata) {
  RBDLUKS_ON_ENCRYPTED(rbd_resize_with_progress, size, cb, cbdata)
  return rbdluks::preload::resize_to(*encrypted, size, true, cb, cbdata);
}

ssize_t rbd_read(rbd_image_t image, uint64_t ofs, size_t len, char* buf) {
  RBDLUKS_ON_ENCRYPTED(rbd_read, ofs, len, buf)
  return rbdluks::preload::read_sync(*encrypted, ofs, len, buf);
}

ssize_t rbd_read2(rbd_image_t image, uint64_t ofs, size_t len, char* buf, int op_flags) {
  RBDLUKS_ON_ENCRYPTED(rbd_read2, ofs, len, buf, op_flags)
  return rbdluks::preload::read_sync(*encrypted, ofs, len, buf);
}

ssize_t rbd_write(rbd_image_t image, uint64_t ofs, size_t len, const char* buf) {
  RBDLUKS_ON_ENCRYPTED(rbd_write, ofs, len, buf)
  return rbdluks::preload::write_sync(*encrypted, ofs, len, buf, 0);
}

ssize_t rbd_write2(rbd_image_t image, uint64_t ofs, size_t len, const char* buf, int op_flags) {
  RBDLUKS_ON_ENCRYPTED(rbd_write2, ofs, len, buf, op_flags)
  return rbdluks::preload::write_sync(*encrypted, ofs, len, buf, op_flags);
}

int rbd_discard(rbd_image_t image, uint64_t ofs, uint64_t len) {
  RBDLUKS_ON_ENCRYPTED(rbd_discard, ofs, len)
  if (len > static_cast<uint64_t>(std::numeric_limits<int>::max())) return -EINVAL;  // as librbd
  auto n = rbdluks::preload::clipped(*encrypted, ofs, len);
  if (!n) return rbdluks::negative_errno(n.error());
  const int r = errno_of(encrypted->image->discard(ofs, *n));
  return r < 0 ? r : static_cast<int>(*n);
}

ssize_t rbd_write_zeroes(rbd_image_t image, uint64_t ofs, size_t len, int zero_flags, int op_flags) {
  RBDLUKS_ON_ENCRYPTED(rbd_write_zeroes, ofs, len, zero_flags, op_flags)
  if (const int r = rbdluks::preload::check_zero_flags(zero_flags, len); r < 0) return r;
  auto n = rbdluks::preload::clipped(*encrypted, ofs, len);
  if (!n) return rbdluks::negative_errno(n.error());
  const int r = rbdluks::preload::thick(zero_flags) ? errno_of(encrypted->image->write(ofs, std::vector<uint8_t>(*n)))
                                                    : errno_of(encrypted->image->write_zeroes(ofs, *n));
  return r < 0 ? r : static_cast<ssize_t>(*n);
}

int rbd_flush(rbd_image_t image) {
  RBDLUKS_ON_ENCRYPTED(rbd_flush)
  return errno_of(encrypted->image->flush());
}

int rbd_invalidate_cache(rbd_image_t image) {
  RBDLUKS_ON_ENCRYPTED(rbd_invalidate_cache)
  return errno_of(encrypted->image->invalidate_cache());
}

int rbd_aio_read(rbd_image_t image, uint64_t off, size_t len, char* buf, rbd_completion_t c) {
  RBDLUKS_ON_ENCRYPTED(rbd_aio_read, off, len, buf, c)
  return rbdluks::preload::aio_read_on(*encrypted, off, len, buf, c);
}

int rbd_aio_read2(rbd_image_t image, uint64_t off, size_t len, char* buf, rbd_completion_t c, int op_flags) {
  RBDLUKS_ON_ENCRYPTED(rbd_aio_read2, off, len, buf, c, op_flags)
  return rbdluks::preload::aio_read_on(*encrypted, off, len, buf, c);
}

int rbd_aio_readv(rbd_image_t image, const struct iovec* iov, int iovcnt, uint64_t off, rbd_completion_t c) {
  RBDLUKS_ON_ENCRYPTED(rbd_aio_readv, iov, iovcnt, off, c)
  if (iovcnt <= 0) return -EINVAL;  // as librbd, which then leaves c alone
  return submit(*encrypted, c, Reports::bytes, [&](auto done) {
    return encrypted->image->aio_readv(off, std::span(iov, static_cast<size_t>(iovcnt)), std::move(done));
  });
}

int rbd_aio_write(rbd_image_t image, uint64_t off, size_t len, const char* buf, rbd_completion_t c) {
  RBDLUKS_ON_ENCRYPTED(rbd_aio_write, off, len, buf, c)
  return rbdluks::preload::aio_write_on(*encrypted, off, len, buf, c, 0);
}

int rbd_aio_write2(rbd_image_t image, uint64_t off, size_t len, const char* buf, rbd_completion_t c, int op_flags) {
  RBDLUKS_ON_ENCRYPTED(rbd_aio_write2, off, len, buf, c, op_flags)
  return rbdluks::preload::aio_write_on(*encrypted, off, len, buf, c, op_flags);
}

int rbd_aio_writev(rbd_image_t image, const struct iovec* iov, int iovcnt, uint64_t off, rbd_completion_t c) {
  RBDLUKS_ON_ENCRYPTED(rbd_aio_writev, iov, iovcnt, off, c)
  if (iovcnt <= 0) return -EINVAL;
  return submit(*encrypted, c, Reports::zero, [&](auto done) {
    return encrypted->image->aio_writev(off, std::span(iov, static_cast<size_t>(iovcnt)), std::move(done));
  });
}

int rbd_aio_discard(rbd_image_t image, uint64_t off, uint64_t len, rbd_completion_t c) {
  RBDLUKS_ON_ENCRYPTED(rbd_aio_discard, off, len, c)
  return submit(*encrypted, c, Reports::zero,
                [&](auto done) { return encrypted->image->aio_discard(off, len, std::move(done)); });
}

int rbd_aio_write_zeroes(rbd_image_t image, uint64_t off, size_t len, rbd_completion_t c, int zero_flags,
                         int op_flags) {
  RBDLUKS_ON_ENCRYPTED(rbd_aio_write_zeroes, off, len, c, zero_flags, op_flags)
  if (const int r = rbdluks::preload::check_zero_flags(zero_flags, len); r < 0) return r;
  if (rbdluks::preload::thick(zero_flags)) {
    auto zeros = std::make_shared<std::vector<uint8_t>>(len);
    return submit(*encrypted, c, Reports::zero, [&](auto done) {
      return encrypted->image->aio_write(off, *zeros, [zeros, done = std::move(done)](ssize_t r) { done(r); });
    });
  }
  return submit(*encrypted, c, Reports::zero,
                [&](auto done) { return encrypted->image->aio_write_zeroes(off, len, std::move(done)); });
}

int rbd_aio_flush(rbd_image_t image, rbd_completion_t c) {
  RBDLUKS_ON_ENCRYPTED(rbd_aio_flush, c)
  return submit(*encrypted, c, Reports::zero, [&](auto done) { return encrypted->image->aio_flush(std::move(done)); });
}

int rbd_diff_iterate(rbd_image_t image, const char* fromsnapname, uint64_t ofs, uint64_t len,
                     int (*cb)(uint64_t, size_t, int, void*), void* arg) {
  RBDLUKS_ON_ENCRYPTED(rbd_diff_iterate, fromsnapname, ofs, len, cb, arg)
  return rbdluks::preload::iterate_allocated(*encrypted, fromsnapname, ofs, len, cb, arg);
}

int rbd_diff_iterate2(rbd_image_t image, const char* fromsnapname, uint64_t ofs, uint64_t len, uint8_t include_parent,
                      uint8_t whole_object, int (*cb)(uint64_t, size_t, int, void*), void* arg) {
  RBDLUKS_ON_ENCRYPTED(rbd_diff_iterate2, fromsnapname, ofs, len, include_parent, whole_object, cb, arg)
  return rbdluks::preload::iterate_allocated(*encrypted, fromsnapname, ofs, len, cb, arg);
}

int rbd_set_image_notification(rbd_image_t image, int fd, int type) {
  RBDLUKS_ON_ENCRYPTED(rbd_set_image_notification, fd, type)
  if (type != EVENT_TYPE_PIPE && type != EVENT_TYPE_EVENTFD) return -EINVAL;
  const std::lock_guard lock(encrypted->events_mutex);
  encrypted->event_fd = fd;
  encrypted->event_type = type;
  return 0;
}

int rbd_poll_io_events(rbd_image_t image, rbd_completion_t* comps, int numcomp) {
  RBDLUKS_ON_ENCRYPTED(rbd_poll_io_events, comps, numcomp)
  return encrypted->poll_events(comps, numcomp);
}

int rbd_encryption_format(rbd_image_t image, rbd_encryption_format_t format, rbd_encryption_options_t opts,
                          size_t opts_size) {
  RBDLUKS_ON_ENCRYPTED(rbd_encryption_format, format, opts, opts_size)
  return rbdluks::preload::refuse_librbd_encryption("rbd_encryption_format", *encrypted);
}

int rbd_encryption_load(rbd_image_t image, rbd_encryption_format_t format, rbd_encryption_options_t opts,
                        size_t opts_size) {
  RBDLUKS_ON_ENCRYPTED(rbd_encryption_load, format, opts, opts_size)
  return rbdluks::preload::refuse_librbd_encryption("rbd_encryption_load", *encrypted);
}

}  // extern "C"
