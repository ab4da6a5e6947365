// librbd_luks: the C API over EncryptedRbdImage. Arguments are checked, Errors and exceptions become
// negative errnos (with the message kept for rbd_luks_last_error) at this boundary, and completions
// behave like librbd's: callback first, then waiters wake, reference-counted so that the callback
// may release its completion. A handle is an OpenImage: the image, and for an image opened with its
// stored key, where to fetch that key again and the follower of reencryption requests.
#include "rbd_luks/librbd_luks.h"

#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>

#include "encrypted_rbd_image.h"
#include "kdf_memory_budget.h"
#include "keyring_registry.h"
#include "reencrypt_request_follower.h"
#include "secure_arena.h"
#include "stored_key.h"

using rbdluks::EncryptedRbdImage;

namespace {

thread_local std::string last_error;

// Never throws: out of memory, the message is lost and the errno still returned. (A message built
// with std::string at the call site can throw there, so those calls stay inside guarded().)
int fail(int r, std::string_view message) noexcept {
  try {
    last_error.assign(message);
  } catch (const std::bad_alloc&) {
    last_error.clear();
  }
  return r;
}

int fail(const rbdluks::Error& error) { return fail(rbdluks::negative_errno(error), error.message()); }

// f's result, with exceptions turned into errnos: nothing may unwind into a C caller.
template <typename F>
auto guarded(F f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return fail(-ENOMEM, "out of memory");
  } catch (const std::exception& e) {
    return fail(-EIO, e.what());
  } catch (...) {
    return fail(-EIO, "unexpected exception");
  }
}

struct Completion {
  Completion(void* cb_arg, rbd_luks_callback_t cb) : arg(cb_arg), callback(cb) {}

  void complete(ssize_t r) {
    {
      const std::lock_guard lock(mutex);
      result = r;
    }
    if (callback != nullptr) callback(this, arg);
    {
      const std::lock_guard lock(mutex);
      done = true;
      finished.notify_all();
    }
    put();
  }

  void put() {
    if (refs.fetch_sub(1) == 1) delete this;
  }

  void* const arg;
  const rbd_luks_callback_t callback;
  std::mutex mutex;
  std::condition_variable finished;
  bool done = false;
  ssize_t result = 0;
  std::atomic<bool> used{false};
  std::atomic<int> refs{1};  // the caller's, and one while a request runs
};

// Fetches the passphrase that opens an image, through an I/O context of its pool.
using FetchKey = std::function<rbdluks::Result<rbdluks::SecureBuffer>(rados_ioctx_t io)>;

struct OpenImage {
  std::unique_ptr<EncryptedRbdImage> image;
  FetchKey fetch_key;  // set for an image opened with its stored key, fetched again for each run
  std::mutex follow_mutex;
  std::unique_ptr<rbdluks::ReencryptRequestFollower> follower;  // under follow_mutex; goes before image
};

OpenImage* open_image_of(rbd_luks_image_t image) { return static_cast<OpenImage*>(image); }
EncryptedRbdImage* image_of(rbd_luks_image_t image) { return open_image_of(image)->image.get(); }

// Submits an asynchronous request that completes c. Reads report their byte count; the others
// report 0 on success, as librbd does.
template <typename Submit>
int submit(rbd_luks_image_t image, rbd_luks_completion_t c, bool reports_bytes, Submit submit_to) {
  if (image == nullptr || c == nullptr) return fail(-EINVAL, "no image or no completion");
  auto* completion = static_cast<Completion*>(c);
  if (completion->used.exchange(true)) return fail(-EINVAL, "the completion was already used for a request");
  ++completion->refs;
  const int r = guarded([&] {
    submit_to(*image_of(image), [completion, reports_bytes](ssize_t result) {
      completion->complete(reports_bytes || result < 0 ? result : 0);
    });
    return 0;
  });
  if (r < 0) {
    completion->used = false;
    --completion->refs;
  }
  return r;
}

int check_iov(const struct iovec* iov, int iovcnt) {
  if (iov == nullptr || iovcnt <= 0 || iovcnt > IOV_MAX) return fail(-EINVAL, "iovcnt must be 1..IOV_MAX");
  return 0;
}

int open_image(rados_ioctx_t io, const char* name, const char* snap_name, const char* passphrase, size_t passphrase_len,
               bool read_only, rbd_luks_image_t* image, FetchKey fetch_key = {}) {
  if (io == nullptr || name == nullptr || image == nullptr || (passphrase == nullptr && passphrase_len > 0)) {
    return fail(-EINVAL, "rbd_luks_open: missing argument");
  }
  return guarded([&] {
    const std::span<const uint8_t> secret(reinterpret_cast<const uint8_t*>(passphrase), passphrase_len);
    std::optional<std::string> snapshot;
    if (snap_name != nullptr) snapshot = snap_name;
    auto handle = std::make_unique<OpenImage>();
    handle->fetch_key = std::move(fetch_key);
    auto opened = EncryptedRbdImage::open(io, name, snapshot, read_only, secret);
    if (!opened) return fail(opened.error());
    handle->image = std::move(*opened);
    *image = handle.release();
    return 0;
  });
}

}  // namespace

extern "C" {

int rbd_luks_open(rados_ioctx_t io, const char* name, const char* snap_name, const char* passphrase,
                  size_t passphrase_len, rbd_luks_image_t* image) {
  return open_image(io, name, snap_name, passphrase, passphrase_len, false, image);
}

int rbd_luks_open_read_only(rados_ioctx_t io, const char* name, const char* snap_name, const char* passphrase,
                            size_t passphrase_len, rbd_luks_image_t* image) {
  return open_image(io, name, snap_name, passphrase, passphrase_len, true, image);
}

int rbd_luks_open_with_stored_key(rados_ioctx_t io, const char* name, const char* snap_name, int read_only,
                                  rbd_luks_image_t* image) {
  return rbd_luks_open_with_stored_key_accepting(io, name, snap_name, read_only, nullptr, image);
}

int rbd_luks_open_with_stored_key_accepting(rados_ioctx_t io, const char* name, const char* snap_name, int read_only,
                                            const char* accepted_key_refs, rbd_luks_image_t* image) {
  if (io == nullptr || name == nullptr || image == nullptr) {
    return fail(-EINVAL, "rbd_luks_open_with_stored_key: missing argument");
  }
  return guarded([&] {
    rbdluks::KeyReferencePolicy policy;
    if (accepted_key_refs != nullptr) {
      auto parsed = rbdluks::parse_key_reference_policy(accepted_key_refs);
      if (!parsed) return fail(-EINVAL, parsed.error().message());
      policy = std::move(parsed).value();
    }
    FetchKey fetch_key = rbdluks::stored_key_source(name, policy);
    auto passphrase = fetch_key(io);
    if (!passphrase) return fail(-ENOKEY, passphrase.error().message());
    return open_image(io, name, snap_name, reinterpret_cast<const char*>(passphrase->data()), passphrase->size(),
                      read_only != 0, image, std::move(fetch_key));
  });
}

int rbd_luks_close(rbd_luks_image_t image) {
  if (image == nullptr) return fail(-EINVAL, "rbd_luks_close: no image");
  const std::unique_ptr<OpenImage> owned(open_image_of(image));  // freed whatever close says
  return guarded([&] {
    owned->follower.reset();  // a run stops between steps first
    auto closed = owned->image->close();
    return closed ? 0 : fail(closed.error());
  });
}

int rbd_luks_get_size(rbd_luks_image_t image, uint64_t* size) {
  if (image == nullptr || size == nullptr) return fail(-EINVAL, "rbd_luks_get_size: missing argument");
  return guarded([&] {
    auto plaintext = image_of(image)->size();
    if (!plaintext) return fail(plaintext.error());
    *size = *plaintext;
    return 0;
  });
}

int rbd_luks_allocated_extents(rbd_luks_image_t image, uint64_t ofs, uint64_t len,
                               int (*cb)(uint64_t offset, uint64_t length, void* arg), void* arg) {
  if (image == nullptr || cb == nullptr) return fail(-EINVAL, "rbd_luks_allocated_extents: missing argument");
  return guarded([&] {
    auto size = image_of(image)->size();
    if (!size) return fail(size.error());
    if (ofs > *size || len > *size - ofs) return fail(-EINVAL, "rbd_luks_allocated_extents: range past the end");
    auto extents = image_of(image)->allocated_extents(ofs, len);
    if (!extents) return fail(extents.error());
    for (const auto& e : *extents) {
      if (const int r = cb(e.offset, e.length, arg); r < 0) return r;
    }
    return 0;
  });
}

int rbd_luks_reencrypt(rbd_luks_image_t image, const char* const* passphrases, const size_t* passphrase_lens,
                       size_t count, uint64_t hotzone_bytes, int flags) {
  if (image == nullptr || (count > 0 && (passphrases == nullptr || passphrase_lens == nullptr))) {
    return fail(-EINVAL, "rbd_luks_reencrypt: missing argument");
  }
  if ((flags & ~RBD_LUKS_REENCRYPT_DROP_UNOPENED_KEYSLOTS) != 0)
    return fail(-EINVAL, "rbd_luks_reencrypt: unknown flags");
  return guarded([&] {
    std::vector<std::span<const uint8_t>> spans;
    for (size_t i = 0; i < count; ++i) {
      if (passphrases[i] == nullptr)
        return fail(-EINVAL, "rbd_luks_reencrypt: passphrase " + std::to_string(i) + " is NULL");
      spans.emplace_back(reinterpret_cast<const uint8_t*>(passphrases[i]), passphrase_lens[i]);
    }
    rbdluks::ReencryptOptions options;
    options.hotzone_bytes = hotzone_bytes;
    options.drop_unopened_keyslots = (flags & RBD_LUKS_REENCRYPT_DROP_UNOPENED_KEYSLOTS) != 0;
    auto report = image_of(image)->reencrypt(spans, options);
    return report ? 0 : fail(report.error());
  });
}

int rbd_luks_follow_reencrypt_requests(rbd_luks_image_t image, unsigned shared_handles) {
  if (image == nullptr) return fail(-EINVAL, "rbd_luks_follow_reencrypt_requests: no image");
  return guarded([&] {
    OpenImage& handle = *open_image_of(image);
    if (!handle.fetch_key) {
      return fail(-EINVAL, handle.image->name() +
                               ": only an image opened with its stored key follows reencryption requests (its key "
                               "is fetched again for each run)");
    }
    if (handle.image->read_only()) return fail(-EROFS, handle.image->name() + " is open read-only");
    const std::lock_guard lock(handle.follow_mutex);
    if (!handle.follower) {
      handle.follower = std::make_unique<rbdluks::ReencryptRequestFollower>(
          *handle.image, [&handle] { return handle.fetch_key(handle.image->ioctx()); }, shared_handles);
    }
    return 0;
  });
}

int rbd_luks_resize(rbd_luks_image_t image, uint64_t size) {
  if (image == nullptr) return fail(-EINVAL, "rbd_luks_resize: no image");
  return guarded([&] {
    if (image_of(image)->read_only()) return fail(-EROFS, image_of(image)->name() + " is open read-only");
    auto resized = image_of(image)->resize(size);
    return resized ? 0 : fail(resized.error());
  });
}

ssize_t rbd_luks_read(rbd_luks_image_t image, uint64_t ofs, size_t len, char* buf, int op_flags) {
  if (image == nullptr || (buf == nullptr && len > 0)) return fail(-EINVAL, "rbd_luks_read: missing argument");
  return guarded([&] { return image_of(image)->read(ofs, {reinterpret_cast<uint8_t*>(buf), len}, op_flags); });
}

ssize_t rbd_luks_write(rbd_luks_image_t image, uint64_t ofs, size_t len, const char* buf, int op_flags) {
  if (image == nullptr || (buf == nullptr && len > 0)) return fail(-EINVAL, "rbd_luks_write: missing argument");
  return guarded([&] { return image_of(image)->write(ofs, {reinterpret_cast<const uint8_t*>(buf), len}, op_flags); });
}

int rbd_luks_discard(rbd_luks_image_t image, uint64_t ofs, uint64_t len) {
  if (image == nullptr || len > INT_MAX) return fail(-EINVAL, "rbd_luks_discard: no image, or more than INT_MAX bytes");
  return guarded([&] { return static_cast<int>(image_of(image)->discard(ofs, len)); });
}

ssize_t rbd_luks_write_zeroes(rbd_luks_image_t image, uint64_t ofs, size_t len) {
  if (image == nullptr) return fail(-EINVAL, "rbd_luks_write_zeroes: no image");
  return guarded([&] { return image_of(image)->write_zeroes(ofs, len); });
}

int rbd_luks_flush(rbd_luks_image_t image) {
  if (image == nullptr) return fail(-EINVAL, "rbd_luks_flush: no image");
  return guarded([&] { return static_cast<int>(image_of(image)->flush()); });
}

int rbd_luks_aio_create_completion(void* cb_arg, rbd_luks_callback_t complete_cb, rbd_luks_completion_t* c) {
  if (c == nullptr) return fail(-EINVAL, "rbd_luks_aio_create_completion: no completion pointer");
  return guarded([&] {
    *c = new Completion(cb_arg, complete_cb);
    return 0;
  });
}

int rbd_luks_aio_read(rbd_luks_image_t image, uint64_t off, size_t len, char* buf, rbd_luks_completion_t c,
                      int op_flags) {
  if (buf == nullptr && len > 0) return fail(-EINVAL, "rbd_luks_aio_read: no buffer");
  return submit(image, c, true, [&](EncryptedRbdImage& i, EncryptedRbdImage::Callback done) {
    i.aio_read(off, {reinterpret_cast<uint8_t*>(buf), len}, std::move(done), op_flags);
  });
}

int rbd_luks_aio_readv(rbd_luks_image_t image, const struct iovec* iov, int iovcnt, uint64_t off,
                       rbd_luks_completion_t c) {
  if (const int r = check_iov(iov, iovcnt); r < 0) return r;
  return submit(image, c, true, [&](EncryptedRbdImage& i, EncryptedRbdImage::Callback done) {
    i.aio_readv(off, {iov, static_cast<size_t>(iovcnt)}, std::move(done));
  });
}

int rbd_luks_aio_write(rbd_luks_image_t image, uint64_t off, size_t len, const char* buf, rbd_luks_completion_t c,
                       int op_flags) {
  if (buf == nullptr && len > 0) return fail(-EINVAL, "rbd_luks_aio_write: no buffer");
  return submit(image, c, false, [&](EncryptedRbdImage& i, EncryptedRbdImage::Callback done) {
    i.aio_write(off, {reinterpret_cast<const uint8_t*>(buf), len}, std::move(done), op_flags);
  });
}

int rbd_luks_aio_writev(rbd_luks_image_t image, const struct iovec* iov, int iovcnt, uint64_t off,
                        rbd_luks_completion_t c) {
  if (const int r = check_iov(iov, iovcnt); r < 0) return r;
  return submit(image, c, false, [&](EncryptedRbdImage& i, EncryptedRbdImage::Callback done) {
    i.aio_writev(off, {iov, static_cast<size_t>(iovcnt)}, std::move(done));
  });
}

int rbd_luks_aio_discard(rbd_luks_image_t image, uint64_t off, uint64_t len, rbd_luks_completion_t c) {
  return submit(image, c, false, [&](EncryptedRbdImage& i, EncryptedRbdImage::Callback done) {
    i.aio_discard(off, len, std::move(done));
  });
}

int rbd_luks_aio_write_zeroes(rbd_luks_image_t image, uint64_t off, size_t len, rbd_luks_completion_t c) {
  return submit(image, c, false, [&](EncryptedRbdImage& i, EncryptedRbdImage::Callback done) {
    i.aio_write_zeroes(off, len, std::move(done));
  });
}

int rbd_luks_aio_flush(rbd_luks_image_t image, rbd_luks_completion_t c) {
  return submit(image, c, false,
                [&](EncryptedRbdImage& i, EncryptedRbdImage::Callback done) { i.aio_flush(std::move(done)); });
}

int rbd_luks_aio_is_complete(rbd_luks_completion_t c) {
  if (c == nullptr) return fail(-EINVAL, "rbd_luks_aio_is_complete: no completion");
  auto* completion = static_cast<Completion*>(c);
  const std::lock_guard lock(completion->mutex);
  return completion->done ? 1 : 0;
}

int rbd_luks_aio_wait_for_complete(rbd_luks_completion_t c) {
  if (c == nullptr) return fail(-EINVAL, "rbd_luks_aio_wait_for_complete: no completion");
  auto* completion = static_cast<Completion*>(c);
  std::unique_lock lock(completion->mutex);
  completion->finished.wait(lock, [&] { return completion->done; });
  return 0;
}

ssize_t rbd_luks_aio_get_return_value(rbd_luks_completion_t c) {
  if (c == nullptr) return fail(-EINVAL, "rbd_luks_aio_get_return_value: no completion");
  auto* completion = static_cast<Completion*>(c);
  const std::lock_guard lock(completion->mutex);
  return completion->result;
}

void* rbd_luks_aio_get_arg(rbd_luks_completion_t c) {
  return c == nullptr ? nullptr : static_cast<Completion*>(c)->arg;
}

void rbd_luks_aio_release(rbd_luks_completion_t c) {
  if (c != nullptr) static_cast<Completion*>(c)->put();
}

int rbd_luks_metadata_get(rbd_luks_image_t image, const char* key, char* value, size_t* val_len) {
  if (image == nullptr || key == nullptr || val_len == nullptr) {
    return fail(-EINVAL, "rbd_luks_metadata_get: missing argument");
  }
  return guarded([&] {
    auto got = image_of(image)->get_metadata(key);
    if (!got) return fail(got.error());
    if (!got->has_value()) return fail(-ENOENT, "no metadata key '" + std::string(key) + "'");
    const std::string& text = **got;
    if (value == nullptr || *val_len < text.size() + 1) {
      *val_len = text.size() + 1;
      return fail(-ERANGE,
                  "the value of '" + std::string(key) + "' needs " + std::to_string(text.size() + 1) + " bytes");
    }
    text.copy(value, text.size());
    value[text.size()] = '\0';
    *val_len = text.size() + 1;
    return 0;
  });
}

int rbd_luks_metadata_set(rbd_luks_image_t image, const char* key, const char* value) {
  if (image == nullptr || key == nullptr || value == nullptr) {
    return fail(-EINVAL, "rbd_luks_metadata_set: missing argument");
  }
  return guarded([&] {
    if (image_of(image)->read_only()) return fail(-EROFS, image_of(image)->name() + " is open read-only");
    auto set = image_of(image)->set_metadata(key, value);
    return set ? 0 : fail(set.error());
  });
}

int rbd_luks_metadata_remove(rbd_luks_image_t image, const char* key) {
  if (image == nullptr || key == nullptr) return fail(-EINVAL, "rbd_luks_metadata_remove: missing argument");
  return guarded([&] {
    if (image_of(image)->read_only()) return fail(-EROFS, image_of(image)->name() + " is open read-only");
    // As rbd_metadata_remove: -ENOENT for an absent key, which the layer below forgives.
    auto removed = image_of(image)->remove_metadata(key);
    if (!removed) return fail(removed.error());
    return *removed ? 0 : fail(-ENOENT, std::string("no metadata '") + key + "' on " + image_of(image)->name());
  });
}

const char* rbd_luks_last_error(void) { return last_error.c_str(); }

int rbd_luks_secure_memory_error(void) { return rbdluks::secure_memory_status().lock_error; }

void rbd_luks_set_secure_memory_warning(void (*warn)(const char* message)) { rbdluks::set_secure_memory_warning(warn); }

void rbd_luks_set_kdf_memory_limit(uint64_t bytes) { rbdluks::KdfMemoryBudget::process().set_limit(bytes); }

uint64_t rbd_luks_get_kdf_memory_limit(void) { return rbdluks::KdfMemoryBudget::process().limit(); }

}  // extern "C"
