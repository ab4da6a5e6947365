// RbdImage: a RawImage over an RBD image (librbd), so the LUKS engine and the commands work on
// `rbd:POOL[/NAMESPACE]/IMAGE[@SNAP]` exactly as on files. Snapshots are always read-only.
#pragma once

#include <rbd/librbd.h>

#include <memory>
#include <optional>
#include <string>

#include "file_image.h"
#include "raw_image.h"
#include "rbd_connection.h"

namespace rbdluks {

struct RbdImageSpec {
  std::string pool;
  std::string name_space;  // empty: the pool's default namespace
  std::string image;
  std::optional<std::string> snapshot;

  // "rbd:pool/image", "rbd:pool/ns/image@snap".
  std::string name() const;
};

class RbdImage final : public RawImage {
 public:
  // Takes ownership of `image`, opened on `ioctx` of `connection`.
  RbdImage(std::shared_ptr<RbdConnection> connection, IoCtxHandle ioctx, rbd_image_t image, std::string name,
           bool read_only);
  ~RbdImage() override;
  RbdImage(const RbdImage&) = delete;
  RbdImage& operator=(const RbdImage&) = delete;

  Result<uint64_t> size() override;
  Status read(uint64_t offset, std::span<uint8_t> out) override;
  Status write(uint64_t offset, std::span<const uint8_t> data) override;
  Status flush() override;
  Status write_zeroes(uint64_t offset, uint64_t length) override;
  Status resize(uint64_t new_size) override;
  bool read_only() const override { return read_only_; }
  Result<std::optional<std::string>> get_metadata(const std::string& key) override;
  Status set_metadata(const std::string& key, const std::string& value) override;
  Result<bool> remove_metadata(const std::string& key) override;
  const std::string& name() const override { return name_; }

  // Whether any object of the image (or of its parent) was ever written: a fresh image has none.
  Result<bool> has_data();

  // Whether rbd_aio_write copies the caller's buffer before it returns, so the buffer may be reused
  // at once: the image's rbd_disable_zero_copy_writes (true by default). librbd only ever turns
  // zero-copy off for an open image, never back on, so a true answer holds until it is closed.
  // False when the setting cannot be read.
  bool copies_async_writes() const;

  // The open librbd image, for the asynchronous data path (rbd_aio_*). Owned by this object.
  rbd_image_t handle() const { return image_; }

 private:
  Status check_writable() const;
  Status check_range(const char* op, uint64_t offset, uint64_t length);

  // Declared in this order so the image closes before its I/O context, and that before the cluster.
  std::shared_ptr<RbdConnection> connection_;
  IoCtxHandle ioctx_;
  rbd_image_t image_;
  std::string name_;
  bool read_only_;
};

// Opens an existing image; a snapshot, or OpenMode::read_only, opens it read-only. A missing pool,
// namespace, image or snapshot is Errc::not_found with a message naming it.
Result<std::unique_ptr<RbdImage>> open_rbd_image(std::shared_ptr<RbdConnection> connection, const RbdImageSpec& spec,
                                                 OpenMode mode);

// Creates an image of `size` bytes with the cluster's default features (rbd_default_features:
// layering, exclusive-lock, object-map, fast-diff, deep-flatten) and opens it read-write. Fails if
// the image exists.
Result<std::unique_ptr<RbdImage>> create_rbd_image(std::shared_ptr<RbdConnection> connection, const RbdImageSpec& spec,
                                                   uint64_t size);

}  // namespace rbdluks
