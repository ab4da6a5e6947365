// EncryptedRbdImage: the plaintext view of a LUKS-formatted RBD image, on librbd's public
// asynchronous C++ API. This is the dispatch layer behind librbd_luks (C) and rbdluks::Image (C++).
//
// The data format is librbd's native encryption: plaintext offset 0 is raw offset data_offset, the
// tweak is plaintext offset / 512, and an all-zero ciphertext sector is a hole that reads as zeros.
// The LUKS header stays hidden: sizes and offsets are plaintext ones.
//
// Requests of any alignment and any iovec layout are accepted. How they are carried out:
// - A request is cut into pieces that never split a sector and, where the layout allows, never
//   cross a RADOS object (stripe unit); pieces run in parallel.
// - Reads need no lock: each sector lives in one object, which RADOS reads and writes atomically.
//   (On the rare layouts where a sector straddles two objects, reads take the range lock shared and
//   every write takes it exclusive.) Whole sectors are decrypted from the buffers librbd received
//   them in straight into the caller's buffers; only partly covered edge sectors (or sectors split
//   between buffers) pass through a one-sector buffer on the stack.
// - Writes encrypt from the caller's buffers (never modified) into a buffer of librbd's own kind
//   and hand it to librbd, which keeps its reference for as long as it needs the bytes. So there is
//   one pass over the data each way, where librbd's C API would add a copy to the encryption.
//   Partly covered sectors are read, merged and re-encrypted; a sector range lock, exclusive for
//   such read-modify-writes and shared for whole-sector writes, keeps overlapping requests from
//   losing each other's bytes. Other clients (processes, hosts) are not under that lock, so a
//   read-modify-write goes back in 512-byte units, those the request covers in part by librbd's
//   compare-and-write against what was read, and starts over when another client changed one
//   meanwhile (rmw_plan.h).
// - write_zeroes and discard make the range read as zeros: whole sectors become holes through
//   librbd's write_zeroes, partial sectors are re-encrypted with zeros.
// - Memory: a write's ciphertext buffer is the size of the data and lives as long as librbd needs
//   it, as librbd's own copy of a plain write does (its C API copies every write while its cache is
//   on); reads need no buffer beyond the ones librbd received into. So rbd-luks holds no more
//   memory than plain librbd for the same requests. Nothing waits for a lock by blocking a thread.
// - Pieces up to DispatchOptions::inline_crypto_bytes are en/decrypted on the thread at hand (the
//   submitter or librbd's completion thread). Of larger ones, a write's last piece is encrypted by
//   the submitting thread while a small worker pool takes the others; a read's are decrypted on
//   librbd's completion thread where the ciphertext arrived, one at a time in the process, and on
//   the workers while that one runs.
// - Completion callbacks run on librbd's completion thread or a worker, never inside the call that
//   submitted the request and never with an internal lock held.
// - Submitting may throw std::bad_alloc, and then nothing was submitted; an allocation failure
//   after that (in a librbd callback) ends the process, as it would inside librbd.
// - Header changes by other clients: each ends with a metadata change (rbd_header_lock.h), which
//   librbd reports here; the header is then read again on a worker. Keyslot changes leave the
//   volume key, and I/O goes on. Once the header is gone, or no longer holds the volume key the
//   image was opened with (another client formatted it), every request fails with -ESTALE, so
//   nothing more is written with a key that no longer exists; header_status() says why.
// - Online reencryption (reencrypt()): the cipher is a KeyBoundaryCipher, new key before the
//   boundary and old key past it. The run holds each hotzone in the range lock, exclusive, from
//   before it reads it until the header says it is done and the boundary has moved past it; so
//   while a run goes on, reads take the range lock too (shared), and every request sees one key per
//   sector from start to end.
#pragma once

#include <rados/librados.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "key_boundary_cipher.h"
#include "luks_volume.h"
#include "range_lock.h"
#include "rbd_image.h"
#include "reencryption.h"
#include "result.h"
#include "sector_codec.h"
#include "secure_buffer.h"
#include "worker_pool.h"
#include "xts_cipher.h"

namespace rbdluks {

struct DispatchOptions {
  std::optional<int> keyslot;                     // the keyslot to try; all active ones when unset
  unsigned worker_threads = 0;                    // crypto threads; 0: WorkerPool::default_threads()
  size_t inline_crypto_bytes = size_t{64} << 10;  // pieces up to this size are en/decrypted on the thread at hand
  // A write's last piece is encrypted on the thread that submits it, which would otherwise only
  // wait. Off for a submitter with more requests to read meanwhile, such as an NBD server's.
  bool encrypt_on_submitting_thread = true;
};

class EncryptedRbdImage {
 public:
  // The bytes the request covered (0 for flush) on success, else a negative errno. As in librbd, a
  // request that runs past the end is cut short there and one that starts past it fails with
  // -EINVAL; -EROFS for a change to a read-only image; librbd's errors as they come.
  using Callback = std::function<void(ssize_t result)>;

  // Reads the LUKS header through librbd, unlocks a keyslot with passphrase and takes over raw.
  static Result<std::unique_ptr<EncryptedRbdImage>> open(std::unique_ptr<RbdImage> raw,
                                                         std::span<const uint8_t> passphrase,
                                                         const DispatchOptions& options = {});
  // Opens image `name` (at `snapshot`, read-only, when given) in the pool and namespace of io.
  static Result<std::unique_ptr<EncryptedRbdImage>> open(rados_ioctx_t io, const std::string& name,
                                                         const std::optional<std::string>& snapshot, bool read_only,
                                                         std::span<const uint8_t> passphrase,
                                                         const DispatchOptions& options = {});

  // Waits for every request in flight (their callbacks included), flushes librbd's cache and closes
  // the RBD image (RbdImage::close): the first failure, e.g. writes librbd's cache acknowledged that
  // the cluster then refused. Everything is released either way; nothing but destruction may
  // follow. Must not run inside a completion callback of this image, nor beside other calls on it.
  Status close();
  // The same when close() has not run, without a way to report a failure.
  ~EncryptedRbdImage();
  EncryptedRbdImage(const EncryptedRbdImage&) = delete;
  EncryptedRbdImage& operator=(const EncryptedRbdImage&) = delete;

  // The layout the image was opened with; after reencrypt(), its cipher and key size are the old ones.
  const VolumeLayout& layout() const { return layout_; }
  // Fine while the image's LUKS header is the one it was opened with (see the top of this file);
  // afterwards the reason why requests fail with -ESTALE.
  Status header_status() const;
  bool read_only() const { return raw_->read_only(); }
  const std::string& name() const { return raw_->name(); }
  // The image's own I/O context (pool and namespace), which lives as long as the image.
  rados_ioctx_t ioctx() const { return raw_->ioctx(); }
  // This client's id, the N of client.N.
  uint64_t client_id() const { return raw_->client_id(); }
  // Bytes of the pieces requests are cut into (a RADOS object or stripe unit, at most 4 MiB).
  uint64_t piece_bytes() const { return grid_.bytes; }

  // Plaintext size in bytes.
  Result<uint64_t> size();
  // The parts of plaintext [offset, offset + length) whose sectors may hold data: the RBD objects
  // that exist (RbdImage::allocated_extents) shifted past the header and clipped. The rest reads as
  // zeros, so copies may skip it.
  Result<std::vector<Extent>> allocated_extents(uint64_t offset, uint64_t length);
  // Sets the plaintext size (a multiple of the sector size); the RBD image becomes data_offset + size.
  // A header change: it takes the header lock (header_lock.h), waiting for another client's change.
  Status resize(uint64_t size);

  Result<std::optional<std::string>> get_metadata(const std::string& key) { return raw_->get_metadata(key); }
  Status set_metadata(const std::string& key, const std::string& value) { return raw_->set_metadata(key, value); }
  Result<bool> remove_metadata(const std::string& key) { return raw_->remove_metadata(key); }

  // The buffers must stay valid until the callback runs; the iovec array itself may go at once.
  // op_flags (LIBRADOS_OP_FLAG_FADVISE_*) go to librbd where its API takes them.
  void aio_read(uint64_t offset, std::span<uint8_t> out, Callback done, int op_flags = 0);
  void aio_readv(uint64_t offset, std::span<const iovec> out, Callback done, int op_flags = 0);
  void aio_write(uint64_t offset, std::span<const uint8_t> data, Callback done, int op_flags = 0);
  void aio_writev(uint64_t offset, std::span<const iovec> data, Callback done, int op_flags = 0);
  void aio_write_zeroes(uint64_t offset, uint64_t length, Callback done);
  // Same as write_zeroes: a discarded range must never show stale plaintext again.
  void aio_discard(uint64_t offset, uint64_t length, Callback done);
  // Completes when the writes that completed before it was submitted are durable.
  void aio_flush(Callback done);

  // Synchronous forms: the same results as the callbacks get.
  ssize_t read(uint64_t offset, std::span<uint8_t> out, int op_flags = 0);
  ssize_t write(uint64_t offset, std::span<const uint8_t> data, int op_flags = 0);
  ssize_t write_zeroes(uint64_t offset, uint64_t length);
  ssize_t discard(uint64_t offset, uint64_t length);
  ssize_t flush();
  Status invalidate_cache() { return raw_->invalidate_cache(); }
  // Through this image's own librbd handle: librbd rolls back only on the handle that holds the
  // image's exclusive lock, and a writer holds it.
  // Refused while a reencryption this image ran is recorded in the header (running or stopped).
  Status snap_rollback(const std::string& snapshot);
  // Whether the header records a reencryption that reencrypt() began and did not finish.
  bool reencryption_unfinished() const;

  // How long an online run waits, between steps, for another client that opened the image to go away
  // before it stops there: longer than the OSD keeps the watch of a client that died.
  static constexpr std::chrono::seconds kOtherClientGrace{40};
  // Online reencryption: a new random volume key (options.cipher and options.key_bytes may change
  // it; the sector size stays), every sector moved to it, and every keyslot whose passphrase is
  // given re-wrapped, as `rbd-luks reencrypt` does offline (reencryption.h), while this image goes
  // on serving requests from other threads. A request on the hotzone being moved waits for it
  // (options.hotzone_bytes of plaintext; 0 for kOnlineHotzoneBytes). The header lock is held
  // meanwhile; librbd's exclusive lock stays in librbd's automatic mode (docs/design.md, "Online
  // reencryption", says why that is safe). The run refuses to start while another client has the
  // image open (EBUSY). Once per open image. If the run stops between steps after the header
  // recorded it, this image goes on serving with both keys; if it fails inside a step, this image's
  // I/O stops (-ESTALE). Either way no client can open the volume until `rbd-luks reencrypt`
  // finishes the run.
  // shared_handles: other open handles of this image in this client that do no I/O
  // (RbdImage::refuse_other_clients). grace: how long the run waits, between steps, for another
  // client that opened the image to go away before it ends there.
  Result<ReencryptReport> reencrypt(const std::vector<std::span<const uint8_t>>& passphrases, ReencryptOptions options,
                                    unsigned shared_handles = 0, std::chrono::milliseconds grace = kOtherClientGrace);
  // Calls listener on librbd's thread, besides the header check, whenever librbd reports a change
  // of the image's header object (RbdImage::watch_updates); it must not wait for this image. One
  // listener; an empty function removes it, and returns once a call in progress has ended.
  void set_update_listener(std::function<void()> listener);
  // The hotzone of an online run unless its caller says otherwise: one RBD object, so that a request
  // waits for a step of 4 MiB at most, where the offline default, 64 MiB, would hold it 16 times as
  // long (and keep two such hotzones in memory).
  static constexpr uint64_t kOnlineHotzoneBytes = uint64_t{4} << 20;

 private:
  enum class Op { read, write, zero, flush };
  struct Request;
  struct Piece;
  struct RmwOp;

  // How requests are cut: at raw offsets origin + k * bytes, which are RADOS object (stripe unit)
  // boundaries when sectors_in_one_object.
  struct PieceGrid {
    uint64_t bytes;
    uint64_t origin;
    bool sectors_in_one_object;
  };

  EncryptedRbdImage(std::unique_ptr<RbdImage> raw, SecureBuffer volume_key, std::shared_ptr<const XtsCipher> cipher,
                    VolumeLayout layout, PieceGrid grid, bool compare_partial_units, const DispatchOptions& options);

  // From now on every read takes the range lock; returns once the reads that did not have ended.
  void lock_every_read();
  // Whether the image's header records a reencryption (never for LUKS1).
  Result<bool> reencryption_recorded();
  // Whether a reencryption step is rewriting a hotzone that overlaps [at, at + length).
  bool rewriting_overlaps(uint64_t at, uint64_t length);
  Status run_reencryption(const std::vector<std::span<const uint8_t>>& passphrases, ReencryptOptions& options,
                          unsigned shared_handles, std::chrono::milliseconds grace, ReencryptReport& report);

  // librbd heard of a header change: the header is read again on a worker, once more if another
  // change comes while that runs.
  void header_may_have_changed();
  void check_header();
  // Why the image's header is no longer the one it was opened with, or nullopt while it is (or
  // cannot be read: a passing read error proves nothing).
  std::optional<std::string> header_replaced();
  // unless_ours: not while reencrypt() owns the header (the change was its own).
  void stop_io(const std::string& reason, bool unless_ours = false);

  void submit(Op op, uint64_t offset, uint64_t length, std::span<const iovec> buffers, Callback done, int op_flags);
  ssize_t check_request(Op op, uint64_t offset, uint64_t& length);
  void start(Request* request);
  SectorSpan next_piece(uint64_t position, uint64_t end) const;
  Piece* add_piece(Request* request, const SectorSpan& span);

  void start_read(Piece* piece);
  void read_done(Piece* piece, ssize_t r);
  void decrypt_and_finish(Piece* piece);
  void decrypt_into_callers_buffers(Piece* piece);

  void start_write(Piece* piece);
  void partial_sector_read(Piece* piece, ssize_t r);
  static std::optional<std::span<const uint8_t>> contiguous_bytes(const Request& request, const SectorSpan& span);
  void encode_and_write(Piece* piece);
  // Puts a read-modify-write back unit by unit (rmw_plan.h); zero_units_read: zero_units() of its
  // partial sectors as read.
  void write_back_rmw(Piece* piece, const std::array<uint32_t, 2>& zero_units_read);
  static void on_rmw_write_done(void* arg, ssize_t r);
  void rmw_write_done(RmwOp* op, ssize_t r);
  void start_zero(Piece* piece);
  void start_flush(Piece* piece);

  // A librbd completion (RbdImage::AioDone) whose argument is a piece, which it continues with Step.
  template <void (EncryptedRbdImage::*Step)(Piece*, ssize_t)>
  static void on_librbd_done(void* arg, ssize_t r);
  // Encrypts a write's piece and sends it, here or on a worker (see the .cc).
  void encrypt_piece(Piece* piece);
  // Reports a piece that failed before librbd took it, never from inside the submitting call.
  void fail_later(Piece* piece, int r);
  void piece_done(Piece* piece, ssize_t r);
  void finish(Request* request);

  Request* take_request();
  void recycle(Request* request);
  // Counts a request in flight. read_without_lock: a read whose sectors never tear, which takes no
  // range lock unless a reencryption has begun; true when it may go without, and is then counted
  // among the unlocked reads until end_in_flight(true).
  bool begin_in_flight(bool read_without_lock = false);
  void end_in_flight(bool unlocked_read = false);
  void wait_until_idle();

  template <typename Submit>
  ssize_t wait_for(Submit submit);

  std::unique_ptr<RbdImage> raw_;
  const std::shared_ptr<KeyBoundaryCipher> cipher_;
  const VolumeLayout layout_;
  const uint32_t sector_size_;
  const PieceGrid grid_;
  const size_t inline_crypto_bytes_;
  const bool encrypt_on_submitting_thread_;
  // Whether partial sectors go back unit by unit with compare-and-write (rmw_plan.h), so that
  // other clients lose none of their bytes; not when librbd caches data for this image
  // (RbdImage::caches_data), whose cache compare-and-write leaves stale. Such a cache is this
  // client's alone and sees no other client's writes, so such an image is safe for one writer
  // only, as it is with plain librbd; within this client the range lock orders the writes.
  const bool compare_partial_units_;

  RangeLock sectors_locked_;

  std::mutex requests_mutex_;
  std::vector<std::unique_ptr<Request>> free_requests_;  // recycled, with their vectors' capacity

  std::mutex in_flight_mutex_;
  std::condition_variable idle_;
  size_t in_flight_ = 0;            // requests, and a header check
  size_t unlocked_reads_ = 0;       // reads in flight without the range lock, under in_flight_mutex_
  bool every_read_locked_ = false;  // under in_flight_mutex_: set once a reencryption begins

  std::atomic<bool> stale_{false};
  bool header_check_running_ = false;  // under header_mutex_, like the next two
  bool header_check_again_ = false;
  // Set by reencrypt() while this process writes the header, and kept when its run stops half way:
  // header checks are off then, as the changes are this image's own.
  bool header_ours_ = false;
  mutable std::mutex header_mutex_;
  // The hotzone of a reencryption step, from the rewriting hook (before the header records it) to
  // the advance past it.
  std::optional<std::pair<uint64_t, uint64_t>> rewriting_;
  std::string stale_reason_;

  // What a changed header must still hold for I/O to go on: the volume key and cipher the image was
  // opened with, or those of its reencryption.
  std::mutex key_mutex_;
  SecureBuffer volume_key_;
  std::string key_cipher_;
  uint32_t key_bytes_;

  std::mutex reencrypt_mutex_;  // one reencrypt() at a time

  std::mutex listener_mutex_;  // held while the listener runs, so that removing it waits for it
  std::function<void()> update_listener_;

  // Last member: destroyed (joined) first, while everything its tasks touch still exists.
  WorkerPool workers_;
};

}  // namespace rbdluks
