// RbdImage: RawImage calls mapped onto librbd's synchronous C++ API, with the whole-length and
// bounds checks that RawImage promises (librbd itself clips reads and writes at the end of the image).
#include "rbd_image.h"

#include <rados/librados.h>
#include <rbd/librbd.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <list>
#include <utility>

#include "rbd_header_lock.h"

namespace rbdluks {
namespace {

// librbd returns byte counts as ssize_t; keep each call well inside that and inside librbd's int-sized
// internal lengths.
constexpr size_t kMaxIoBytes = size_t{256} << 20;

std::string range_text(uint64_t offset, uint64_t length) {
  return std::to_string(length) + " bytes at " + std::to_string(offset);
}

// What a librbd completion carries back to us: RBD::AioCompletion has room for one argument only.
struct PendingAio {
  RbdImage::AioDone done;
  void* arg;
};

void on_aio_complete(librbd::completion_t c, void* pending_aio) {
  auto* completion = static_cast<librbd::RBD::AioCompletion*>(c);
  const ssize_t r = completion->get_return_value();
  completion->release();
  const std::unique_ptr<PendingAio> pending(static_cast<PendingAio*>(pending_aio));
  pending->done(pending->arg, r);
}

template <typename Submit>
int submit_aio(RbdImage::AioDone done, void* arg, Submit submit) {
  auto pending = std::make_unique<PendingAio>(PendingAio{done, arg});
  auto* completion = new librbd::RBD::AioCompletion(pending.get(), &on_aio_complete);
  if (const int r = submit(completion); r < 0) {
    completion->release();
    return r;
  }
  static_cast<void>(pending.release());  // on_aio_complete owns it now
  return 0;
}

}  // namespace

class RbdImage::UpdateWatcher final : public librbd::UpdateWatchCtx {
 public:
  explicit UpdateWatcher(std::function<void()> on_update) : on_update_(std::move(on_update)) {}
  void handle_notify() override { on_update_(); }
  uint64_t handle = 0;

 private:
  std::function<void()> on_update_;
};

std::string RbdImageSpec::name() const {
  std::string n = "rbd:" + pool + "/";
  if (!name_space.empty()) n += name_space + "/";
  n += image;
  if (snapshot) n += "@" + *snapshot;
  return n;
}

RbdImage::RbdImage(std::shared_ptr<RbdConnection> connection, IoCtxHandle ioctx, std::unique_ptr<librbd::Image> image,
                   std::string name, bool read_only, bool snapshot)
    : connection_(std::move(connection)),
      ioctx_(std::move(ioctx)),
      image_(std::move(image)),
      name_(std::move(name)),
      read_only_(read_only),
      snapshot_(snapshot) {}

RbdImage::~RbdImage() {
  unwatch_updates();
  if (image_) image_->close();
}

Status RbdImage::watch_updates(std::function<void()> on_update) {
  unwatch_updates();
  auto watcher = std::make_unique<UpdateWatcher>(std::move(on_update));
  if (const int r = image_->update_watch(watcher.get(), &watcher->handle); r < 0) {
    return ceph_error(r, "watch " + name_ + " for header changes");
  }
  update_watcher_ = std::move(watcher);
  return {};
}

void RbdImage::unwatch_updates() {
  if (!update_watcher_ || !image_) return;
  // librbd waits here for a handle_notify in progress.
  image_->update_unwatch(update_watcher_->handle);
  update_watcher_.reset();
}

Status RbdImage::close() {
  unwatch_updates();
  Status flushed = flush();
  const int r = image_->close();
  image_.reset();
  if (!flushed) return flushed;
  if (r < 0) return ceph_error(r, "close " + name_);
  return {};
}

Result<uint64_t> RbdImage::size() {
  uint64_t size = 0;
  if (const int r = image_->size(&size); r < 0) return ceph_error(r, "size of " + name_);
  return size;
}

Status RbdImage::read(uint64_t offset, std::span<uint8_t> out) {
  RL_TRY(check_range("read", offset, out.size()));
  size_t done = 0;
  while (done < out.size()) {
    const size_t chunk = std::min(out.size() - done, kMaxIoBytes);
    ceph::bufferlist bl;
    const ssize_t r = image_->read2(offset + done, chunk, bl, 0);
    if (r < 0) return ceph_error(static_cast<int>(r), "read " + name_ + " " + range_text(offset + done, chunk));
    if (r == 0) {
      return Error(Errc::failure,
                   "read " + name_ + ": " + range_text(offset, out.size()) + " pass the end of the image");
    }
    bl.begin().copy(static_cast<unsigned>(r), reinterpret_cast<char*>(out.data() + done));
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
    // Copied: with librbd's cache on, a write may complete while librbd still holds its data.
    ceph::bufferlist bl;
    bl.append(reinterpret_cast<const char*>(data.data() + done), static_cast<unsigned>(chunk));
    // Force unit access: librbd 16's writearound cache (the default policy) would complete the
    // write before the OSDs have it, and its flush can lose the error (design.md, "OSD failures").
    // Headers and keyslots are written here, and a change must not report success it did not have.
    const ssize_t r = image_->write2(offset + done, chunk, bl, LIBRADOS_OP_FLAG_FADVISE_FUA);
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
    const ssize_t r = image_->write_zeroes(offset + done, chunk, 0, 0);
    if (r < 0) return ceph_error(static_cast<int>(r), "zero " + name_ + " " + range_text(offset + done, chunk));
    if (r == 0) return Error(Errc::failure, "zero " + name_ + ": no progress at " + std::to_string(offset + done));
    done += static_cast<uint64_t>(r);
  }
  return {};
}

int RbdImage::aio_read(uint64_t offset, uint64_t length, RbdBufferList& into, int op_flags, AioDone done, void* arg) {
  return submit_aio(done, arg, [&](librbd::RBD::AioCompletion* c) {
    return image_->aio_read2(offset, length, into.list(), c, op_flags);
  });
}

int RbdImage::aio_write(uint64_t offset, RbdBufferList& data, int op_flags, AioDone done, void* arg) {
  return submit_aio(done, arg, [&](librbd::RBD::AioCompletion* c) {
    return image_->aio_write2(offset, data.size(), data.list(), c, op_flags);
  });
}

int RbdImage::aio_write_zeroes(uint64_t offset, uint64_t length, AioDone done, void* arg) {
  return submit_aio(done, arg,
                    [&](librbd::RBD::AioCompletion* c) { return image_->aio_write_zeroes(offset, length, c, 0, 0); });
}

int RbdImage::aio_compare_and_write(uint64_t offset, RbdBufferList& expected, RbdBufferList& data,
                                    uint64_t* mismatch_offset, int op_flags, AioDone done, void* arg) {
  return submit_aio(done, arg, [&](librbd::RBD::AioCompletion* c) {
    return image_->aio_compare_and_write(offset, data.size(), expected.list(), data.list(), c, mismatch_offset,
                                         op_flags);
  });
}

int RbdImage::aio_flush(AioDone done, void* arg) {
  return submit_aio(done, arg, [&](librbd::RBD::AioCompletion* c) { return image_->aio_flush(c); });
}

uint64_t RbdImage::stripe_unit() const { return image_->get_stripe_unit(); }

uint64_t RbdImage::discard_unit() const {
  librbd::image_info_t info{};
  if (image_->get_stripe_count() != 1 || image_->stat(info, sizeof info) < 0) return 0;
  return info.obj_size;
}

Result<bool> RbdImage::caches_data() const {
  std::vector<librbd::config_option_t> options;
  if (const int r = image_->config_list(&options); r < 0) return ceph_error(r, "configuration of " + name_);
  std::string cache, policy;
  for (const auto& option : options) {
    if (option.name == "rbd_cache") cache = option.value;
    if (option.name == "rbd_cache_policy") policy = option.value;
  }
  // Pool and image overrides come back as they were stored, so read them as Ceph reads a bool:
  // "true"/"false" in any case, or a number.
  std::ranges::transform(cache, cache.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const bool on = cache == "true" || (!cache.empty() && std::ranges::all_of(cache, ::isdigit) &&
                                      cache.find_first_not_of('0') != std::string::npos);
  return on && (policy == "writeback" || policy == "writethrough");
}

Status RbdImage::flush() {
  if (read_only_) return {};
  if (const int r = image_->flush(); r < 0) return ceph_error(r, "flush " + name_);
  return {};
}

Status RbdImage::invalidate_cache() {
  if (const int r = image_->invalidate_cache(); r < 0) return ceph_error(r, "invalidate the cache of " + name_);
  return {};
}

Status RbdImage::snap_rollback(const std::string& snapshot) {
  if (const int r = image_->snap_rollback(snapshot.c_str()); r < 0) {
    return ceph_error(r, "roll " + name_ + " back to snapshot " + snapshot);
  }
  return {};
}

Result<std::vector<Extent>> RbdImage::allocated_extents(uint64_t offset, uint64_t length) {
  return existing_objects(offset, length, /*include_parent=*/true);
}

Result<std::vector<Extent>> RbdImage::stored_extents(uint64_t offset, uint64_t length) {
  return existing_objects(offset, length, /*include_parent=*/false);
}

Result<std::vector<Extent>> RbdImage::existing_objects(uint64_t offset, uint64_t length, bool include_parent) {
  // librbd 16 aborts (a ceph_assert in DiffIterate) on an empty range with fast-diff on.
  if (length == 0) return std::vector<Extent>{};
  std::vector<Extent> objects;
  auto add = [](uint64_t at, size_t bytes, int exists, void* arg) {
    if (exists != 0) static_cast<std::vector<Extent>*>(arg)->push_back({at, bytes});
    return 0;
  };
  const int r = image_->diff_iterate2(nullptr, offset, length, include_parent, /*whole_object=*/true, add, &objects);
  if (r < 0) return ceph_error(r, "find the allocated objects of " + name_);
  // Objects are listed concurrently, so in no set order; the first and last may reach past the range.
  std::ranges::sort(objects, {}, &Extent::offset);
  std::vector<Extent> extents;
  for (const Extent& e : objects)
    append_extent(extents, std::max(e.offset, offset), std::min(e.end(), offset + length));
  return extents;
}

Status RbdImage::resize(uint64_t new_size) {
  RL_TRY(check_writable());
  if (const int r = image_->resize(new_size); r < 0) {
    return ceph_error(r, "resize " + name_ + " to " + std::to_string(new_size) + " bytes");
  }
  return {};
}

Result<std::optional<std::string>> RbdImage::get_metadata(const std::string& key) {
  std::string value;
  const int r = image_->metadata_get(key, &value);
  if (r == -ENOENT) return std::optional<std::string>();
  if (r < 0) return ceph_error(r, "read metadata '" + key + "' of " + name_);
  return std::optional<std::string>(std::move(value));
}

Status RbdImage::set_metadata(const std::string& key, const std::string& value) {
  RL_TRY(check_writable());
  if (const int r = image_->metadata_set(key, value); r < 0) {
    return ceph_error(r, "set metadata '" + key + "' of " + name_);
  }
  return {};
}

Result<bool> RbdImage::remove_metadata(const std::string& key) {
  RL_TRY(check_writable());
  const int r = image_->metadata_remove(key);
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
  const int r = image_->diff_iterate2(nullptr, 0, end, true, true, on_extent, &found);
  if (found) return true;
  if (r < 0) return ceph_error(r, "list allocated extents of " + name_);
  return false;
}

Result<std::unique_ptr<HeaderLock>> RbdImage::lock_header(const std::string& purpose) {
  return lock_rbd_header(*this, purpose);
}

Result<std::string> RbdImage::header_object() const {
  uint8_t old_format = 0;
  if (const int r = image_->old_format(&old_format); r < 0) return ceph_error(r, "image format of " + name_);
  if (old_format != 0) return Error(Errc::unsupported, name_ + " is an RBD format 1 image, which rbd-luks cannot lock");
  std::string id;
  if (const int r = image_->get_id(&id); r < 0) return ceph_error(r, "image id of " + name_);
  return "rbd_header." + id;
}

Result<std::vector<RbdWatcher>> RbdImage::watchers() const {
  std::list<librbd::image_watcher_t> listed;
  if (const int r = image_->list_watchers(listed); r < 0) return ceph_error(r, "list the clients of " + name_);
  std::vector<RbdWatcher> watchers;
  for (const auto& w : listed) watchers.push_back({static_cast<uint64_t>(w.id), w.addr});
  return watchers;
}

Status RbdImage::refuse_other_clients(const std::string& why, unsigned shared_handles) const {
  RL_ASSIGN(const auto all, watchers());
  // Every open image watches its header once; this client's other open images on the same cluster
  // handle show as more watches of this client.
  unsigned own_watches = 1 + shared_handles;
  for (const RbdWatcher& watcher : all) {
    if (watcher.client_id == client_id() && own_watches > 0) {
      --own_watches;
      continue;
    }
    return Error(Errc::failure, name_ + " is open by another client (client." + std::to_string(watcher.client_id) +
                                    " at " + watcher.address + "); " + why);
  }
  return {};
}

uint64_t RbdImage::client_id() const { return rados_get_instance_id(rados_ioctx_get_cluster(ioctx_.get())); }

Status RbdImage::check_range(const char* op, uint64_t offset, uint64_t length) {
  RL_ASSIGN(const uint64_t end, size());
  if (offset > end || length > end - offset) {
    return Error(Errc::failure,
                 std::string(op) + " " + name_ + ": " + range_text(offset, length) + " pass the end of the image");
  }
  return {};
}

Status RbdImage::hold_exclusive_lock() {
  RL_TRY(check_writable());
  uint64_t features = 0;
  if (const int r = image_->features(&features); r < 0) return ceph_error(r, "features of " + name_);
  if ((features & RBD_FEATURE_EXCLUSIVE_LOCK) == 0) {
    return Error(Errc::unsupported, name_ + " has no exclusive-lock feature");
  }
  if (const int r = image_->lock_acquire(RBD_LOCK_MODE_EXCLUSIVE); r < 0) {
    return ceph_error(r, "taking librbd's exclusive lock of " + name_);
  }
  return {};
}

Status RbdImage::check_writable() const {
  if (!read_only_) return {};
  return Error(Errc::failure, name_ + " is open read-only");
}

Result<std::unique_ptr<RbdImage>> open_rbd_image(std::shared_ptr<RbdConnection> connection, IoCtxHandle ioctx,
                                                 const std::string& image, const std::optional<std::string>& snapshot,
                                                 OpenMode mode, const std::string& name) {
  librados::IoCtx io;
  librados::IoCtx::from_rados_ioctx_t(ioctx.get(), io);
  const bool read_only = mode == OpenMode::read_only || snapshot.has_value();
  const char* snap = snapshot ? snapshot->c_str() : nullptr;
  librbd::RBD rbd;
  auto opened = std::make_unique<librbd::Image>();
  const int r = read_only ? rbd.open_read_only(io, *opened, image.c_str(), snap) : rbd.open(io, *opened, image.c_str());
  if (r == -ENOENT) {
    const std::string head = snapshot ? name.substr(0, name.size() - snapshot->size() - 1) : name;
    librbd::Image probe;
    if (snapshot && rbd.open_read_only(io, probe, image.c_str(), nullptr) == 0) {
      return Error(Errc::not_found, "snapshot '" + *snapshot + "' of " + head + " does not exist");
    }
    return Error(Errc::not_found, "image " + head + " does not exist");
  }
  if (r < 0) return ceph_error(r, "open " + name);
  return std::make_unique<RbdImage>(std::move(connection), std::move(ioctx), std::move(opened), name, read_only,
                                    snapshot.has_value());
}

Result<std::unique_ptr<RbdImage>> open_rbd_image(std::shared_ptr<RbdConnection> connection, const RbdImageSpec& spec,
                                                 OpenMode mode) {
  RL_ASSIGN(auto ioctx, connection->open_pool(spec.pool, spec.name_space));
  return open_rbd_image(std::move(connection), std::move(ioctx), spec.image, spec.snapshot, mode, spec.name());
}

Result<std::unique_ptr<RbdImage>> create_rbd_image(std::shared_ptr<RbdConnection> connection, const RbdImageSpec& spec,
                                                   uint64_t size) {
  if (spec.snapshot) return Error(Errc::usage, "cannot create " + spec.name() + ": a snapshot is not an image");
  {
    RL_ASSIGN(auto ioctx, connection->open_pool(spec.pool, spec.name_space));
    librados::IoCtx io;
    librados::IoCtx::from_rados_ioctx_t(ioctx.get(), io);
    librbd::ImageOptions options;
    const int r = librbd::RBD().create4(io, spec.image.c_str(), size, options);
    if (r == -EEXIST) return Error(Errc::failure, "image " + spec.name() + " already exists");
    if (r < 0) return Error(Errc::failure, ceph_error(r, "create " + spec.name()).message());
  }
  return open_rbd_image(std::move(connection), spec, OpenMode::read_write);
}

}  // namespace rbdluks
