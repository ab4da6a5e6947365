// rbdluks::Image: the C++ API of librbd_luks, a thin shell over EncryptedRbdImage that turns its
// negative errnos into Status values and keeps exceptions (allocation failures) inside.
#include "rbd_luks/image.h"

#include <cstring>
#include <new>
#include <string>
#include <system_error>

#include "encrypted_rbd_image.h"
#include "keyring_registry.h"
#include "reencrypt_request_follower.h"
#include "secret_file.h"
#include "stored_key.h"

namespace rbdluks {
namespace {

Error out_of_memory(const std::string& what) {
  return {std::make_error_code(std::errc::not_enough_memory), what + ": out of memory"};
}

// f's result, or an error when it runs out of memory (the only exception the layer lets through).
template <typename F>
auto guarded(const std::string& name, const char* what, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return out_of_memory(std::string(what) + " " + name);
  }
}

}  // namespace

// Fetches the passphrase that opens the image, through an I/O context of its pool.
struct Image::KeySource {
  std::function<Result<SecureBuffer>(rados_ioctx_t io)> fetch;
};

Image::Image(std::unique_ptr<EncryptedRbdImage> impl) : impl_(std::move(impl)) {}

Image::~Image() = default;

Status Image::close() {
  follower_.reset();                                                    // a run stops between steps first
  const std::unique_ptr<EncryptedRbdImage> closing = std::move(impl_);  // released whatever close says
  return guarded(closing->name(), "close", [&] { return closing->close(); });
}

Result<std::unique_ptr<Image>> Image::open(rados_ioctx_t io, const std::string& name,
                                           std::span<const uint8_t> passphrase, const OpenOptions& options) {
  return guarded(name, "open", [&]() -> Result<std::unique_ptr<Image>> {
    DispatchOptions dispatch;
    dispatch.keyslot = options.keyslot;
    dispatch.worker_threads = options.crypto_threads;
    RL_ASSIGN(auto impl, EncryptedRbdImage::open(io, name, options.snapshot, options.read_only, passphrase, dispatch));
    return std::unique_ptr<Image>(new Image(std::move(impl)));
  });
}

Result<std::unique_ptr<Image>> Image::open(rados_ioctx_t io, const std::string& name,
                                           std::span<const uint8_t> passphrase) {
  return open(io, name, passphrase, OpenOptions{});
}

Result<std::unique_ptr<Image>> Image::open_with_source(rados_ioctx_t io, const std::string& name,
                                                       const OpenOptions& options, std::unique_ptr<KeySource> source) {
  RL_ASSIGN(auto passphrase, source->fetch(io));
  RL_ASSIGN(auto image, open(io, name, passphrase.span(), options));
  image->key_source_ = std::move(source);
  return image;
}

Result<std::unique_ptr<Image>> Image::open_with_passphrase_file(rados_ioctx_t io, const std::string& name,
                                                                const std::string& passphrase_file,
                                                                const OpenOptions& options) {
  const auto from_file = [passphrase_file](rados_ioctx_t) -> Result<SecureBuffer> {
    auto passphrase = read_secret_file(passphrase_file);
    if (!passphrase) return Error(Errc::key_unavailable, passphrase.error().message());
    return std::move(*passphrase);
  };
  return guarded(name, "open", [&] {
    return open_with_source(io, name, options, std::make_unique<KeySource>(KeySource{from_file}));
  });
}

Result<std::unique_ptr<Image>> Image::open_with_stored_key(rados_ioctx_t io, const std::string& name,
                                                           const OpenOptions& options) {
  return guarded(name, "open", [&] {
    return open_with_source(io, name, options, std::make_unique<KeySource>(KeySource{stored_key_source(name, {})}));
  });
}

Result<std::unique_ptr<Image>> Image::open_with_stored_key(rados_ioctx_t io, const std::string& name,
                                                           const OpenOptions& options,
                                                           const std::string& accepted_key_refs) {
  return guarded(name, "open", [&]() -> Result<std::unique_ptr<Image>> {
    RL_ASSIGN(const auto policy, parse_key_reference_policy(accepted_key_refs));
    return open_with_source(io, name, options, std::make_unique<KeySource>(KeySource{stored_key_source(name, policy)}));
  });
}

const std::string& Image::name() const { return impl_->name(); }
bool Image::read_only() const { return impl_->read_only(); }
uint32_t Image::sector_size() const { return impl_->layout().sector_size; }
uint64_t Image::data_offset() const { return impl_->layout().data_offset; }

Result<uint64_t> Image::size() {
  return guarded(name(), "size of", [&] { return impl_->size(); });
}

Status Image::reencrypt(const std::vector<std::span<const uint8_t>>& passphrases, const ReencryptOptions& options) {
  return guarded(name(), "reencrypt", [&]() -> Status {
    rbdluks::ReencryptOptions run;
    run.hotzone_bytes = options.hotzone_bytes;
    run.drop_unopened_keyslots = options.drop_unopened_keyslots;
    run.progress = options.progress;
    run.stop_requested = options.stop_requested;
    RL_TRY(impl_->reencrypt(passphrases, run));
    return {};
  });
}

Status Image::follow_reencrypt_requests(unsigned shared_handles) {
  return guarded(name(), "follow reencryption requests of", [&]() -> Status {
    if (!key_source_) {
      return Error(Errc::usage, name() +
                                    ": only an image opened with a passphrase file or a stored key follows "
                                    "reencryption requests (its key is fetched again for each run)");
    }
    if (impl_->read_only()) return Error(Errc::usage, name() + " is open read-only; a reencryption rewrites it");
    if (follower_) return {};
    follower_ = std::make_unique<ReencryptRequestFollower>(
        *impl_, [this] { return key_source_->fetch(impl_->ioctx()); }, shared_handles);
    return {};
  });
}

Status Image::resize(uint64_t size) {
  return guarded(name(), "resize", [&] { return impl_->resize(size); });
}

Status Image::status_of(ssize_t r, const char* what, uint64_t offset, uint64_t length) const {
  if (r >= 0) return {};
  return Error(std::error_code(static_cast<int>(-r), std::generic_category()),
               name() + ": " + what + " of " + std::to_string(length) + " bytes at " + std::to_string(offset) + ": " +
                   std::generic_category().message(static_cast<int>(-r)));
}

// The data path cuts requests short at the end, as librbd does; a Status could not say so.
Status Image::check_inside(const char* what, uint64_t offset, uint64_t length) {
  if (length == 0) return {};
  RL_ASSIGN(const uint64_t end, size());
  if (offset < end && length <= end - offset) return {};
  return status_of(-EINVAL, what, offset, length);
}

Status Image::read(uint64_t offset, std::span<uint8_t> out) {
  return guarded(name(), "read", [&]() -> Status {
    RL_TRY(check_inside("read", offset, out.size()));
    return status_of(impl_->read(offset, out), "read", offset, out.size());
  });
}

Status Image::write(uint64_t offset, std::span<const uint8_t> data) {
  return guarded(name(), "write", [&]() -> Status {
    RL_TRY(check_inside("write", offset, data.size()));
    return status_of(impl_->write(offset, data), "write", offset, data.size());
  });
}

Status Image::discard(uint64_t offset, uint64_t length) {
  return guarded(name(), "discard", [&]() -> Status {
    RL_TRY(check_inside("discard", offset, length));
    return status_of(impl_->discard(offset, length), "discard", offset, length);
  });
}

Status Image::write_zeroes(uint64_t offset, uint64_t length) {
  return guarded(name(), "write_zeroes", [&]() -> Status {
    RL_TRY(check_inside("write_zeroes", offset, length));
    return status_of(impl_->write_zeroes(offset, length), "write_zeroes", offset, length);
  });
}

Result<std::vector<Image::Extent>> Image::allocated_extents(uint64_t offset, uint64_t length) {
  return guarded(name(), "allocated_extents", [&]() -> Result<std::vector<Extent>> {
    RL_TRY(check_inside("allocated_extents", offset, length));
    RL_ASSIGN(const auto extents, impl_->allocated_extents(offset, length));
    std::vector<Extent> out;
    out.reserve(extents.size());
    for (const auto& e : extents) out.push_back({e.offset, e.length});
    return out;
  });
}

Status Image::invalidate_cache() {
  return guarded(name(), "invalidate the cache of", [&] { return impl_->invalidate_cache(); });
}

Status Image::snap_rollback(const std::string& snapshot) {
  return guarded(name(), "roll back", [&] { return impl_->snap_rollback(snapshot); });
}

Status Image::flush() {
  return guarded(name(), "flush", [&] { return status_of(impl_->flush(), "flush", 0, 0); });
}

Status Image::aio_read(uint64_t offset, std::span<uint8_t> out, Completion done) {
  return guarded(name(), "aio_read", [&]() -> Status {
    impl_->aio_read(offset, out, std::move(done));
    return {};
  });
}

Status Image::aio_readv(uint64_t offset, std::span<const iovec> out, Completion done) {
  return guarded(name(), "aio_readv", [&]() -> Status {
    impl_->aio_readv(offset, out, std::move(done));
    return {};
  });
}

Status Image::aio_write(uint64_t offset, std::span<const uint8_t> data, Completion done) {
  return guarded(name(), "aio_write", [&]() -> Status {
    impl_->aio_write(offset, data, std::move(done));
    return {};
  });
}

Status Image::aio_writev(uint64_t offset, std::span<const iovec> data, Completion done) {
  return guarded(name(), "aio_writev", [&]() -> Status {
    impl_->aio_writev(offset, data, std::move(done));
    return {};
  });
}

Status Image::aio_discard(uint64_t offset, uint64_t length, Completion done) {
  return guarded(name(), "aio_discard", [&]() -> Status {
    impl_->aio_discard(offset, length, std::move(done));
    return {};
  });
}

Status Image::aio_write_zeroes(uint64_t offset, uint64_t length, Completion done) {
  return guarded(name(), "aio_write_zeroes", [&]() -> Status {
    impl_->aio_write_zeroes(offset, length, std::move(done));
    return {};
  });
}

Status Image::aio_flush(Completion done) {
  return guarded(name(), "aio_flush", [&]() -> Status {
    impl_->aio_flush(std::move(done));
    return {};
  });
}

Result<std::optional<std::string>> Image::metadata_get(const std::string& key) {
  return guarded(name(), "read metadata of", [&] { return impl_->get_metadata(key); });
}

Status Image::metadata_set(const std::string& key, const std::string& value) {
  return guarded(name(), "set metadata of", [&] { return impl_->set_metadata(key, value); });
}

Status Image::metadata_remove(const std::string& key) {
  return guarded(name(), "remove metadata of", [&]() -> Status {
    RL_TRY(impl_->remove_metadata(key));
    return {};
  });
}

}  // namespace rbdluks
