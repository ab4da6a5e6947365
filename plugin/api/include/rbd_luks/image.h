// rbdluks::Image: LUKS-encrypted RBD images for librbd client programs (C++ API of librbd_luks).
//
// The plaintext of an RBD image that holds a LUKS1 or LUKS2 volume, in librbd's native encryption
// format: offset 0 is the first byte of the data segment, the size excludes the header. Requests of
// any alignment and from any number of threads are fine.
//
// Synchronous calls return Status/Result (rbdluks' error values: error.h and result.h must be on
// the include path, next to this header). Errors of librbd and librados keep their errno, as
// std::generic_category() codes: ESHUTDOWN when the cluster blocklisted the client, ETIMEDOUT when
// it did not answer within rados_osd_op_timeout, EIO, and so on. Asynchronous ones call `done` with the request's byte
// count (0 for flush) or a negative errno, on a librbd or library thread, never inside the call
// that submitted them; `done` must not block on I/O of the same image, close it, or throw. Buffers
// must stay valid until `done` runs; iovec arrays may go as soon as the call returns.
#pragma once

#include <rados/librados.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "result.h"

#define RBD_LUKS_CXX_API __attribute__((visibility("default")))

namespace rbdluks {

class EncryptedRbdImage;
class ReencryptRequestFollower;

class RBD_LUKS_CXX_API Image {
 public:
  struct OpenOptions {
    std::optional<std::string> snapshot;  // opens read-only at this snapshot
    bool read_only = false;
    std::optional<int> keyslot;   // only try this keyslot
    unsigned crypto_threads = 0;  // 0: one per CPU, at most 4
  };
  using Completion = std::function<void(ssize_t result)>;

  // Opens image `name` in the pool and namespace of io (which may go once this returns; its
  // cluster handle must outlive the image). Errors: Errc::bad_key (wrong passphrase),
  // Errc::bad_header (not LUKS), Errc::unsupported, Errc::not_found, librbd's errno, Errc::failure.
  static Result<std::unique_ptr<Image>> open(rados_ioctx_t io, const std::string& name,
                                             std::span<const uint8_t> passphrase, const OpenOptions& options);
  static Result<std::unique_ptr<Image>> open(rados_ioctx_t io, const std::string& name,
                                             std::span<const uint8_t> passphrase);
  // The passphrase is the exact bytes of file `passphrase_file` (as `rbd-luks --passphrase-file`
  // reads it), kept in locked memory and wiped. Errc::key_unavailable when it cannot be read.
  static Result<std::unique_ptr<Image>> open_with_passphrase_file(rados_ioctx_t io, const std::string& name,
                                                                  const std::string& passphrase_file,
                                                                  const OpenOptions& options);
  // Opens with the key the image's metadata refers to (recorded by `rbd-luks format --new-key`,
  // `--key-ref` or `key-ref set`), fetched from its keyring; no secret needed at hand.
  // Errc::key_unavailable when the keyring refuses or cannot be reached.
  static Result<std::unique_ptr<Image>> open_with_stored_key(rados_ioctx_t io, const std::string& name,
                                                             const OpenOptions& options);
  // The same, accepting from the metadata (which anyone who can write the image can change) only the
  // references that accepted_key_refs lists: keyrings ("barbican", "config-key", "file") and
  // "file:DIR" entries for key files directly in the absolute directory DIR, comma-separated, e.g.
  // "config-key,barbican" or "barbican,file:/etc/rbd-luks/keys". Errc::key_unavailable for a
  // reference it does not accept, Errc::usage for a malformed list.
  static Result<std::unique_ptr<Image>> open_with_stored_key(rados_ioctx_t io, const std::string& name,
                                                             const OpenOptions& options,
                                                             const std::string& accepted_key_refs);

  // Waits for requests in flight, flushes and closes the image. The first failure is returned, e.g.
  // ESHUTDOWN (the client was blocklisted) or ETIMEDOUT, as std::generic_category() codes, when
  // data that librbd's cache had acknowledged could not be written. The image is closed and
  // released either way; only the destructor may follow.
  Status close();
  // Closes the image if close() has not, without a way to report a failure.
  ~Image();
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  // "rbd:pool[/namespace]/image[@snapshot]".
  const std::string& name() const;
  bool read_only() const;
  uint32_t sector_size() const;
  // Bytes of the RBD image in front of the plaintext (the LUKS header and keyslots).
  uint64_t data_offset() const;
  Result<uint64_t> size();
  // A multiple of sector_size().
  Status resize(uint64_t size);

  // The range must lie within the image, else std::errc::invalid_argument and nothing is
  // done. (The asynchronous calls, like librbd, cut a request that runs past the end short there
  // and report the bytes covered.)
  Status read(uint64_t offset, std::span<uint8_t> out);
  Status write(uint64_t offset, std::span<const uint8_t> data);
  // Both make the range read back as zeros.
  Status discard(uint64_t offset, uint64_t length);
  Status write_zeroes(uint64_t offset, uint64_t length);
  Status flush();
  // Drops what librbd's cache holds of the image, so that the next reads come from the cluster.
  Status invalidate_cache();
  // Rolls the image (header and data) back to a snapshot of it.
  Status snap_rollback(const std::string& snapshot);

  struct Extent {
    uint64_t offset;
    uint64_t length;
  };
  // The parts of [offset, offset + length) that may hold data, in order: the RBD objects that
  // exist (librbd's diff iteration against the image's beginning, parent included), shifted past
  // the LUKS header and clipped to the range. Everything else reads as zeros, so a copy may skip
  // it and keep its destination thin. The range must lie within the image.
  Result<std::vector<Extent>> allocated_extents(uint64_t offset, uint64_t length);

  // An error here (out of memory) means the request was not submitted and done will not run.
  Status aio_read(uint64_t offset, std::span<uint8_t> out, Completion done);
  Status aio_readv(uint64_t offset, std::span<const iovec> out, Completion done);
  Status aio_write(uint64_t offset, std::span<const uint8_t> data, Completion done);
  Status aio_writev(uint64_t offset, std::span<const iovec> data, Completion done);
  Status aio_discard(uint64_t offset, uint64_t length, Completion done);
  Status aio_write_zeroes(uint64_t offset, uint64_t length, Completion done);
  Status aio_flush(Completion done);

  // RBD image metadata; std::nullopt for an absent key.
  Result<std::optional<std::string>> metadata_get(const std::string& key);
  Status metadata_set(const std::string& key, const std::string& value);
  Status metadata_remove(const std::string& key);

  struct ReencryptOptions {
    uint64_t hotzone_bytes = 0;           // the range moved (and held from requests) per step; 0: 4 MiB
    bool drop_unopened_keyslots = false;  // keyslots no passphrase opens are removed, instead of an error
    std::function<void(uint64_t done, uint64_t total)> progress;  // after each step, plaintext bytes
    std::function<bool()> stop_requested;                         // polled between steps
  };
  // Online reencryption: a new random volume key (same cipher and key size), every sector rewritten
  // under it hotzone by hotzone while this image goes on serving requests from other threads (a
  // request on the hotzone being moved waits for it), and every keyslot whose passphrase is given
  // re-wrapped. Blocks until done. Refused (EBUSY, std::generic_category()) while another client has
  // the image open. Once per open image (Errc::usage after that). Errc::bad_key when no passphrase opens the volume;
  // Errc::usage when a keyslot would be lost without drop_unopened_keyslots. A run that stops between steps leaves this
  // image serving with both keys; one that fails inside a step stops its I/O (ESTALE). Either way no client opens the
  // volume until `rbd-luks reencrypt` finishes the run.
  Status reencrypt(const std::vector<std::span<const uint8_t>>& passphrases, const ReencryptOptions& options);
  // Runs, in this process and until the image closes, the online reencryptions that
  // `rbd-luks reencrypt TARGET --online` asks for: the command records a request in the image's
  // metadata, and this image runs it as reencrypt() does, re-wrapping the keyslot its own key opens
  // (fetched again from the same passphrase file or key reference when a request comes), and writes
  // its progress and outcome back for the command to report. Closing the image stops a run between
  // steps (`rbd-luks reencrypt` then finishes it). shared_handles: other handles of this image that
  // this client keeps open and does no I/O through (the preload library keeps one for snapshots and
  // metadata), which would otherwise count as other clients. Errc::usage for an image opened with a
  // passphrase in memory (open()), read-only or at a snapshot.
  Status follow_reencrypt_requests(unsigned shared_handles = 0);

 private:
  struct KeySource;
  explicit Image(std::unique_ptr<EncryptedRbdImage> impl);
  // Opens with the passphrase source fetches, and keeps source for follow_reencrypt_requests().
  static Result<std::unique_ptr<Image>> open_with_source(rados_ioctx_t io, const std::string& name,
                                                         const OpenOptions& options, std::unique_ptr<KeySource> source);
  Status status_of(ssize_t r, const char* what, uint64_t offset, uint64_t length) const;
  Status check_inside(const char* what, uint64_t offset, uint64_t length);

  std::unique_ptr<EncryptedRbdImage> impl_;
  // Where the open took the passphrase, for follow_reencrypt_requests(); none after open().
  std::unique_ptr<KeySource> key_source_;
  std::unique_ptr<ReencryptRequestFollower> follower_;  // destroyed before impl_
};

}  // namespace rbdluks
