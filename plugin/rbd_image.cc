// RbdImage: RawImage calls mapped onto librbd's synchronous C API, with the whole-length and
// bounds checks that RawImage promises (librbd itself clips reads and writes at the end of the image).
#include "rbd_image.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace rbdluks {
namespace {

// librbd returns byte counts as ssize_t; keep each call well inside that and inside librbd's int-sized
// internal lengths.
constexpr size_t kMaxIoBytes = size_t{256} << 20;

std::string range_text(uint64_t offset, uint64_t length) {
  return std::to_string(length) + " bytes at " + std::to_string(offset);
}

}  // namespace

std::string RbdImageSpec::name() const {
  std::string n = "rbd:" + pool + "/";
  if (!name_space.empty()) n += name_space + "/";
  n += image;
  if (snapshot) n += "@" + *snapshot;
  return n;
}

RbdImage::RbdImage(std::shared_ptr<RbdConnection> connection, IoCtxHandle ioctx, rbd_image_t image, std::string name,
                   bool read_only)
    : connection_(std::move(connection)),
      ioctx_(std::move(ioctx)),
      image_(image),
      name_(std::move(name)),
      read_only_(read_only) {}

RbdImage::~RbdImage() { rbd_close(image_); }

Result<uint64_t> RbdImage::size() {
  uint64_t size = 0;
  if (const int r = rbd_get_size(image_, &size); r < 0) return ceph_error(r, "size of " + name_);
  return size;
}

Status RbdImage::read(uint64_t offset, std::span<uint8_t> out) {
  RL_TRY(check_range("read", offset, out.size()));
  size_t done = 0;
  while (done < out.size()) {
    const size_t chunk = std::min(out.size() - done, kMaxIoBytes);
    const ssize_t r = rbd_read2(image_, offset + done, chunk, reinterpret_cast<char*>(out.data() + done), 0);
    if (r < 0) return ceph_error(static_cast<int>(r), "read " + name_ + " " + range_text(offset + done, chunk));
    if (r == 0) {
      return Error(Errc::failure,
                   "read " + name_ + ": " + range_text(offset, out.size()) + " pass the end of the image");
    }
    done += static_cast<size_t>(r);
  }
  return {};
}

Status RbdImage::write(uint64_t offset, std::span<const uint8_t> data) {
  RL_TRY(check_writable());
  RL_TRY(check_range("write", offset, data.size()));
  size_t done = 0;
  while (done < data.size()) {
    const size_t chunk = std::min(data.size() - done, kMaxIoBytes);
    const ssize_t r = rbd_write2(image_, offset + done, chunk, reinterpret_cast<const char*>(data.data() + done), 0);
    if (r < 0) return ceph_error(static_cast<int>(r), "write " + name_ + " " + range_text(offset + done, chunk));
    if (r == 0) return Error(Errc::failure, "write " + name_ + ": no progress at " + std::to_string(offset + done));
    done += static_cast<size_t>(r);
  }
  return {};
}

// librbd discards whole objects inside the range and zeroes the edges, so nothing is allocated anew.
Status RbdImage::write_zeroes(uint64_t offset, uint64_t length) {
  RL_TRY(check_writable());
  RL_TRY(check_range("zero", offset, length));
  uint64_t done = 0;
  while (done < length) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(length - done, kMaxIoBytes));
    const ssize_t r = rbd_write_zeroes(image_, offset + done, chunk, 0, 0);
    if (r < 0) return ceph_error(static_cast<int>(r), "zero " + name_ + " " + range_text(offset + done, chunk));
    if (r == 0) return Error(Errc::failure, "zero " + name_ + ": no progress at " + std::to_string(offset + done));
    done += static_cast<uint64_t>(r);
  }
  return {};
}

bool RbdImage::copies_async_writes() const {
  std::vector<rbd_config_option_t> options(512);
  int max = static_cast<int>(options.size());
  int r = rbd_config_image_list(image_, options.data(), &max);
  if (r == -ERANGE) {
    options.resize(static_cast<size_t>(max));
    r = rbd_config_image_list(image_, options.data(), &max);
  }
  if (r < 0) return false;
  bool copies = false;
  for (int i = 0; i < max; ++i) {
    if (std::strcmp(options[i].name, "rbd_disable_zero_copy_writes") == 0)
      copies = std::strcmp(options[i].value, "true") == 0;
  }
  rbd_config_image_list_cleanup(options.data(), max);
  return copies;
}

Status RbdImage::flush() {
  if (read_only_) return {};
  if (const int r = rbd_flush(image_); r < 0) return ceph_error(r, "flush " + name_);
  return {};
}

Status RbdImage::resize(uint64_t new_size) {
  RL_TRY(check_writable());
  if (const int r = rbd_resize(image_, new_size); r < 0) {
    return ceph_error(r, "resize " + name_ + " to " + std::to_string(new_size) + " bytes");
  }
  return {};
}

Result<std::optional<std::string>> RbdImage::get_metadata(const std::string& key) {
  std::vector<char> value(256);
  for (;;) {
    size_t length = value.size();
    const int r = rbd_metadata_get(image_, key.c_str(), value.data(), &length);
    if (r == -ENOENT) return std::optional<std::string>();
    if (r == -ERANGE && length > value.size()) {
      value.resize(length);
      continue;
    }
    if (r < 0) return Error(Errc::failure, ceph_error(r, "read metadata '" + key + "' of " + name_).message());
    // On success librbd leaves the length alone; the value is a C string.
    return std::optional<std::string>(std::string(value.data(), strnlen(value.data(), value.size())));
  }
}

Status RbdImage::set_metadata(const std::string& key, const std::string& value) {
  RL_TRY(check_writable());
  if (const int r = rbd_metadata_set(image_, key.c_str(), value.c_str()); r < 0) {
    return ceph_error(r, "set metadata '" + key + "' of " + name_);
  }
  return {};
}

Result<bool> RbdImage::remove_metadata(const std::string& key) {
  RL_TRY(check_writable());
  const int r = rbd_metadata_remove(image_, key.c_str());
  if (r == -ENOENT) return false;
  if (r < 0) return ceph_error(r, "remove metadata '" + key + "' of " + name_);
  return true;
}

Result<bool> RbdImage::has_data() {
  RL_ASSIGN(const uint64_t end, size());
  bool found = false;
  // whole_object lets librbd answer from the object map when the image has one.
  auto on_extent = [](uint64_t, size_t, int exists, void* arg) -> int {
    if (exists == 0) return 0;
    *static_cast<bool*>(arg) = true;
    return -ECANCELED;  // one extent is enough
  };
  const int r = rbd_diff_iterate2(image_, nullptr, 0, end, 1, 1, on_extent, &found);
  if (found) return true;
  if (r < 0) return ceph_error(r, "list allocated extents of " + name_);
  return false;
}

Status RbdImage::check_range(const char* op, uint64_t offset, uint64_t length) {
  RL_ASSIGN(const uint64_t end, size());
  if (offset > end || length > end - offset) {
    return Error(Errc::failure,
                 std::string(op) + " " + name_ + ": " + range_text(offset, length) + " pass the end of the image");
  }
  return {};
}

Status RbdImage::check_writable() const {
  if (!read_only_) return {};
  return Error(Errc::failure, name_ + " is open read-only");
}

Result<std::unique_ptr<RbdImage>> open_rbd_image(std::shared_ptr<RbdConnection> connection, const RbdImageSpec& spec,
                                                 OpenMode mode) {
  RL_ASSIGN(auto ioctx, connection->open_pool(spec.pool, spec.name_space));
  const bool read_only = mode == OpenMode::read_only || spec.snapshot.has_value();
  const char* snap = spec.snapshot ? spec.snapshot->c_str() : nullptr;
  rbd_image_t image = nullptr;
  const int r = read_only ? rbd_open_read_only(ioctx.get(), spec.image.c_str(), &image, snap)
                          : rbd_open(ioctx.get(), spec.image.c_str(), &image, nullptr);
  if (r == -ENOENT) {
    RbdImageSpec head = spec;
    head.snapshot.reset();
    rbd_image_t probe = nullptr;
    if (spec.snapshot && rbd_open_read_only(ioctx.get(), spec.image.c_str(), &probe, nullptr) == 0) {
      rbd_close(probe);
      return Error(Errc::not_found, "snapshot '" + *spec.snapshot + "' of " + head.name() + " does not exist");
    }
    return Error(Errc::not_found, "image " + head.name() + " does not exist");
  }
  if (r < 0) return ceph_error(r, "open " + spec.name());
  return std::make_unique<RbdImage>(std::move(connection), std::move(ioctx), image, spec.name(), read_only);
}

Result<std::unique_ptr<RbdImage>> create_rbd_image(std::shared_ptr<RbdConnection> connection, const RbdImageSpec& spec,
                                                   uint64_t size) {
  if (spec.snapshot) return Error(Errc::usage, "cannot create " + spec.name() + ": a snapshot is not an image");
  {
    RL_ASSIGN(auto ioctx, connection->open_pool(spec.pool, spec.name_space));
    rbd_image_options_t options;
    rbd_image_options_create(&options);
    const int r = rbd_create4(ioctx.get(), spec.image.c_str(), size, options);
    rbd_image_options_destroy(options);
    if (r == -EEXIST) return Error(Errc::failure, "image " + spec.name() + " already exists");
    if (r < 0) return Error(Errc::failure, ceph_error(r, "create " + spec.name()).message());
  }
  return open_rbd_image(std::move(connection), spec, OpenMode::read_write);
}

}  // namespace rbdluks
