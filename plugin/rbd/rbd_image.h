// RbdImage: a RawImage over an RBD image (librbd), so the LUKS engine and the commands work on
// `rbd:POOL[/NAMESPACE]/IMAGE[@SNAP]` exactly as on files. Snapshots are always read-only.
//
// It opens the image through librbd's C++ API, whose buffer lists let the dispatch layer hand librbd
// ciphertext it encrypted into a buffer librbd then owns, and decrypt what librbd received where it
// lies: the C API copies the data of every write (while librbd's cache is on, its default) and of
// every read, and those copies would come on top of the encryption pass. librbd.hpp itself is only
// included by rbd_image.cc (see rbd_buffer_list.h).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "file_image.h"
#include "raw_image.h"
#include "rbd_buffer_list.h"
#include "rbd_connection.h"

namespace librbd {
class Image;
}

namespace rbdluks {

struct RbdImageSpec {
  std::string pool;
  std::string name_space;  // empty: the pool's default namespace
  std::string image;
  std::optional<std::string> snapshot;

  // "rbd:pool/image", "rbd:pool/ns/image@snap".
  std::string name() const;
};

// A client that has an image open: librbd watches the image's header object for it.
struct RbdWatcher {
  uint64_t client_id;   // the N of client.N
  std::string address;  // its RADOS address
};

class RbdImage final : public RawImage {
 public:
  // Takes ownership of `image`, opened on `ioctx` of `connection` (which may be null when the
  // caller keeps the cluster connected for the image's lifetime).
  RbdImage(std::shared_ptr<RbdConnection> connection, IoCtxHandle ioctx, std::unique_ptr<librbd::Image> image,
           std::string name, bool read_only, bool snapshot = false);
  // Closes the image if close() has not, without a way to report a failure.
  ~RbdImage() override;
  RbdImage(const RbdImage&) = delete;
  RbdImage& operator=(const RbdImage&) = delete;

  Result<uint64_t> size() override;
  Status read(uint64_t offset, std::span<uint8_t> out) override;
  Status write(uint64_t offset, std::span<const uint8_t> data) override;
  Status flush() override;
  Status invalidate_cache();
  Status snap_rollback(const std::string& snapshot);
  Status write_zeroes(uint64_t offset, uint64_t length) override;
  // Whole objects that exist (parent's included, for clones), from librbd's diff iteration against
  // the image's beginning: the object map where fast-diff is on, else one listing per object.
  Result<std::vector<Extent>> allocated_extents(uint64_t offset, uint64_t length) override;
  // The objects this image has itself, without its parent's.
  Result<std::vector<Extent>> stored_extents(uint64_t offset, uint64_t length) override;
  // The object, when objects lie one after the other (a stripe count of 1).
  uint64_t discard_unit() const override;
  bool peers_read_holes_as_zeros() const override { return true; }
  Status resize(uint64_t new_size) override;
  bool read_only() const override { return read_only_; }
  bool snapshot() const override { return snapshot_; }
  Result<std::optional<std::string>> get_metadata(const std::string& key) override;
  Status set_metadata(const std::string& key, const std::string& value) override;
  Result<bool> remove_metadata(const std::string& key) override;
  const std::string& name() const override { return name_; }
  // A RADOS lock on the header object (rbd_header_lock.h).
  Result<std::unique_ptr<HeaderLock>> lock_header(const std::string& purpose) override;

  // The RADOS object that holds the image's header, "rbd_header.ID", in ioctx().
  Result<std::string> header_object() const;
  // Takes librbd's exclusive lock and keeps it until the image closes, refusing to hand it over:
  // meanwhile every other client's writes fail at once (EROFS), whatever client it is (QEMU, rbd-luks,
  // librbd native), instead of landing on data that is being rewritten. Errc::unsupported when the
  // image lacks the exclusive-lock feature.
  Status hold_exclusive_lock();
  // The clients that have the image open, this one included.
  Result<std::vector<RbdWatcher>> watchers() const;
  // Errc::failure naming another client that has the image open, if one does (another open image of
  // this process counts, but for `shared_handles` of them: handles the caller knows do no I/O, such
  // as the preload library's librbd handle for snapshots and metadata), with `why` after it.
  Status refuse_other_clients(const std::string& why, unsigned shared_handles = 0) const;
  // This client's id (the N of client.N), as watchers() reports it.
  uint64_t client_id() const;
  rados_ioctx_t ioctx() const { return ioctx_.get(); }

  // Calls on_update on a librbd thread each time librbd hears that the image's header object
  // changed: metadata set or removed (as every header change does last, rbd_header_lock.h), a
  // resize, a snapshot. Not for data writes, such as a new LUKS header. on_update must not wait for
  // this image's librbd calls. One watcher at a time; unwatch_updates (or the destructor) ends it,
  // after any call of on_update in progress has returned.
  Status watch_updates(std::function<void()> on_update);
  void unwatch_updates();

  // Flushes (a writable image) and closes the image, reporting the first failure; the image is
  // closed and librbd's resources released either way. librbd's own close also flushes its cache,
  // but drops a failed flush's error: writes its cache acknowledged could be lost while it says
  // success. Nothing but destruction may follow.
  Status close();

  // Whether any object of the image (or of its parent) was ever written: a fresh image has none.
  Result<bool> has_data();

  // The asynchronous data path. Each call returns 0 and later runs done(arg, result) on a librbd
  // thread, with librbd's result (bytes read, 0 for the others, or a negative errno); or returns
  // librbd's negative errno at once and never runs done.
  using AioDone = void (*)(void* arg, ssize_t result);
  int aio_read(uint64_t offset, uint64_t length, RbdBufferList& into, int op_flags, AioDone done, void* arg);
  // librbd takes its own reference to data's buffers and keeps it for as long as it needs them,
  // which with its cache on is past done.
  int aio_write(uint64_t offset, RbdBufferList& data, int op_flags, AioDone done, void* arg);
  int aio_write_zeroes(uint64_t offset, uint64_t length, AioDone done, void* arg);
  // Writes data (at most 512 bytes, inside one 512-byte block: librbd 16's limits) only if the
  // image still holds `expected` there, atomically; a range never written compares equal to zeros.
  // A mismatch completes with -EILSEQ. *mismatch_offset is librbd's to fill until done runs.
  int aio_compare_and_write(uint64_t offset, RbdBufferList& expected, RbdBufferList& data, uint64_t* mismatch_offset,
                            int op_flags, AioDone done, void* arg);
  int aio_flush(AioDone done, void* arg);

  // The unit librbd cuts I/O at: the stripe unit, which is the object size unless the image is
  // striped (and never more than it).
  uint64_t stripe_unit() const;

  // Whether librbd keeps what it reads and writes in its ObjectCacher for this image (rbd_cache on
  // with the writeback or writethrough policy, as the image's effective configuration says).
  // Compare-and-write goes around that cache and leaves it stale, so a later read through this
  // handle would return the old data; the default writearound policy caches no data.
  Result<bool> caches_data() const;

  // The open librbd image (librbd.hpp), for what RawImage does not cover, such as snapshots.
  librbd::Image& image() const { return *image_; }

 private:
  Result<std::vector<Extent>> existing_objects(uint64_t offset, uint64_t length, bool include_parent);
  Status check_writable() const;
  Status check_range(const char* op, uint64_t offset, uint64_t length);

  // Declared in this order so the image closes before its I/O context, and that before the cluster.
  std::shared_ptr<RbdConnection> connection_;
  IoCtxHandle ioctx_;
  std::unique_ptr<librbd::Image> image_;
  std::string name_;
  bool read_only_;
  bool snapshot_;
  class UpdateWatcher;
  std::unique_ptr<UpdateWatcher> update_watcher_;
};

// Opens an existing image; a snapshot, or OpenMode::read_only, opens it read-only. A missing pool,
// namespace, image or snapshot is Errc::not_found with a message naming it.
Result<std::unique_ptr<RbdImage>> open_rbd_image(std::shared_ptr<RbdConnection> connection, const RbdImageSpec& spec,
                                                 OpenMode mode);
// The same on an I/O context already opened: the image keeps `ioctx`, and `connection` when given
// (without one, the caller keeps the cluster connected while the image is open); `name` is what
// messages call the image, "rbd:POOL[/NAMESPACE]/IMAGE[@SNAP]".
Result<std::unique_ptr<RbdImage>> open_rbd_image(std::shared_ptr<RbdConnection> connection, IoCtxHandle ioctx,
                                                 const std::string& image, const std::optional<std::string>& snapshot,
                                                 OpenMode mode, const std::string& name);

// Creates an image of `size` bytes with the cluster's default features (rbd_default_features:
// layering, exclusive-lock, object-map, fast-diff, deep-flatten) and opens it read-write. Fails if
// the image exists.
Result<std::unique_ptr<RbdImage>> create_rbd_image(std::shared_ptr<RbdConnection> connection, const RbdImageSpec& spec,
                                                   uint64_t size);

}  // namespace rbdluks
