// EncryptedRbdImage: a request is planned into pieces when it is submitted (so allocation failures
// surface there, before anything is issued), waits for its sector range when it writes, then every
// piece runs its own chain of librbd completions:
//   read:  rbd read -> decrypt into the caller's buffers (here or on a worker) -> done
//   write: [read partial sectors] -> encrypt into a new librbd buffer (here or on a worker) -> rbd write -> done
//          with partial sectors, the write is the units of rmw_plan.h (writes and compare-and-writes),
//          and a compare that finds another client's change starts the piece over from its reads;
//          where librbd caches data, one write (compare_partial_units_ in the .h)
//   zero:  whole sectors: rbd write_zeroes -> done; a partial sector: like a write of zeros
// The last piece to finish releases the range and calls back. Requests are recycled together with
// their pieces and iovec vectors, so these cost no allocation in a steady stream of I/O.
#include "encrypted_rbd_image.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <thread>
#include <utility>

#include "alignment.h"
#include "cipher_spec.h"
#include "heap_trim.h"
#include "luks2_header.h"
#include "luks2_reencrypt_state.h"
#include "rmw_plan.h"
#include "scattered_sectors.h"

namespace rbdluks {
namespace {

// Largest piece, so that one request's ciphertext is never all in one huge allocation.
constexpr uint64_t kMaxPieceBytes = uint64_t{4} << 20;
// Recycled requests kept beyond this are freed: enough for any sane queue depth.
constexpr size_t kMaxFreeRequests = 256;
// A read-modify-write that finds another client's change this often in a row gives up with -EIO.
// Each time, another client's write to the same unit went through, so this only ends a client that
// cannot get a turn at all.
constexpr int kMaxRmwAttempts = 1000;
// Writes from several caller buffers are gathered into the ciphertext buffer and encrypted in chunks
// of this size (a multiple of every sector size), small enough to stay in the L2 cache between the
// two steps.
constexpr uint64_t kCryptoChunkBytes = uint64_t{64} << 10;

// The request whose submit() is running on this thread, if any (see EncryptedRbdImage::encrypt_piece).
thread_local const void* submitting_here = nullptr;

// Whether a large read is being decrypted on one of librbd's completion threads right now (see
// EncryptedRbdImage::read_done). Process-wide, because those threads are: librados has a few
// (librados_thread_count, 2 by default) that complete every image's requests.
std::atomic<bool> large_decryption_on_completion_thread{false};

// Calls f(data, bytes) for each contiguous stretch of the caller's buffers that holds bytes
// [skip, skip + length) of their concatenation.
template <typename F>
void for_each_segment(const std::vector<iovec>& buffers, uint64_t skip, uint64_t length, F f) {
  for (const iovec& v : buffers) {
    if (length == 0) return;
    if (skip >= v.iov_len) {
      skip -= v.iov_len;
      continue;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(v.iov_len - skip, length));
    f(static_cast<uint8_t*>(v.iov_base) + skip, n);
    skip = 0;
    length -= n;
  }
}

Error librbd_error(int r, const std::string& what) {
  return {std::error_code(-r, std::generic_category()), what + ": " + std::generic_category().message(-r)};
}

// "pool", "pool/namespace" of an I/O context, for names in messages.
std::string pool_path(rados_ioctx_t io) {
  char pool[256] = {};
  char name_space[256] = {};
  if (rados_ioctx_get_pool_name(io, pool, sizeof pool - 1) < 0) std::strcpy(pool, "?");
  if (rados_ioctx_get_namespace(io, name_space, sizeof name_space - 1) < 0) name_space[0] = '\0';
  return name_space[0] == '\0' ? std::string(pool) : std::string(pool) + "/" + name_space;
}

}  // namespace

struct EncryptedRbdImage::Piece {
  EncryptedRbdImage* image = nullptr;
  Request* request = nullptr;
  SectorSpan span;
  // Reads: the ciphertext as librbd received it. Writes: the ciphertext to send, in a buffer of
  // librbd's kind, so that librbd takes it as it is and frees it once it is done with it.
  RbdBufferList data;
  // Reads: views of data's buffers and of the caller's buffers for this piece (kept for their
  // capacity).
  std::vector<std::span<const uint8_t>> from;
  std::vector<std::span<uint8_t>> to;
  // Writes: the partial sectors read back (head first), those reads still running, and the first
  // error among them.
  std::array<RbdBufferList, 2> edges;
  std::atomic<int> reads_left{0};
  std::atomic<int> read_error{0};
  // Writes with partial sectors: the writes of rmw_plan.h (kept for their capacity), those still
  // running, the first error among them, whether a compare found another client's change, and how
  // often the piece started over for that.
  std::vector<std::unique_ptr<RmwOp>> rmw_ops;
  std::atomic<size_t> rmw_left{0};
  std::atomic<int> rmw_error{0};
  std::atomic<bool> rmw_changed{false};
  int rmw_attempts = 0;
};

struct EncryptedRbdImage::RmwOp {
  Piece* piece = nullptr;
  RmwWrite::Kind kind = RmwWrite::Kind::whole;
  RbdBufferList expected;  // compare, fill: what the unit must still hold
  RbdBufferList data;      // a view of the piece's ciphertext
  uint64_t mismatch_offset = 0;
};

struct EncryptedRbdImage::Request {
  Op op = Op::read;
  uint64_t offset = 0;
  uint64_t length = 0;
  int op_flags = 0;
  std::vector<iovec> buffers;  // the caller's, for reads and writes
  Callback done;
  RangeLock::Guard guard;
  bool unlocked_read = false;  // set by begin_in_flight()
  std::atomic<size_t> pieces_left{0};
  std::atomic<int> error{0};                   // the first failure, a negative errno
  std::vector<std::unique_ptr<Piece>> pieces;  // the first piece_count are this request's
  size_t piece_count = 0;
};

EncryptedRbdImage::EncryptedRbdImage(std::unique_ptr<RbdImage> raw, SecureBuffer volume_key,
                                     std::shared_ptr<const XtsCipher> cipher, VolumeLayout layout, PieceGrid grid,
                                     bool compare_partial_units, const DispatchOptions& options)
    : raw_(std::move(raw)),
      cipher_(std::make_shared<KeyBoundaryCipher>(std::move(cipher))),
      layout_(std::move(layout)),
      sector_size_(layout_.sector_size),
      grid_(grid),
      inline_crypto_bytes_(options.inline_crypto_bytes),
      encrypt_on_submitting_thread_(options.encrypt_on_submitting_thread),
      compare_partial_units_(compare_partial_units),
      volume_key_(std::move(volume_key)),
      key_cipher_(layout_.cipher),
      key_bytes_(layout_.key_bytes),
      workers_(options.worker_threads != 0 ? options.worker_threads : WorkerPool::default_threads()) {}

EncryptedRbdImage::~EncryptedRbdImage() {
  raw_->unwatch_updates();  // no header check starts after this
  wait_until_idle();
}

Status EncryptedRbdImage::close() {
  raw_->unwatch_updates();
  wait_until_idle();
  return raw_->close();
}

Result<std::unique_ptr<EncryptedRbdImage>> EncryptedRbdImage::open(std::unique_ptr<RbdImage> raw,
                                                                   std::span<const uint8_t> passphrase,
                                                                   const DispatchOptions& options) {
  // The engine's messages already name the image.
  RL_ASSIGN(auto volume, load_luks(*raw));
  RL_ASSIGN(auto key, volume->open(passphrase, options.keyslot));
  VolumeLayout layout = volume->layout();
  auto cipher = make_cipher(layout.cipher, key.volume_key.span());
  if (!cipher) return Error(cipher.error()).context(raw->name());

  // Pieces follow librbd's object grid (the stripe unit is the object size unless the image is
  // striped), so no piece crosses an object. When the data segment is not sector-aligned in that
  // grid, some sectors straddle two objects whatever we do; pieces then just avoid splitting sectors.
  const uint64_t granule = raw->stripe_unit();
  const bool on_grid = granule % layout.sector_size == 0 && layout.data_offset % layout.sector_size == 0;
  const PieceGrid grid = on_grid ? PieceGrid{std::min(granule, kMaxPieceBytes), layout.data_offset, true}
                                 : PieceGrid{kMaxPieceBytes, 0, false};
  // A read-only image writes nothing, so its cache policy does not matter (and reading the
  // configuration needs more rights than reading the image).
  bool caches_data = false;
  if (!raw->read_only()) {
    RL_ASSIGN(caches_data, raw->caches_data());
  }

  std::unique_ptr<EncryptedRbdImage> image;
  try {
    image.reset(new EncryptedRbdImage(std::move(raw), std::move(key.volume_key),
                                      std::shared_ptr<const XtsCipher>(std::move(*cipher)), std::move(layout), grid,
                                      !caches_data, options));
  } catch (const std::system_error& e) {
    return Error(Errc::failure, "start crypto worker threads: " + std::string(e.what()));
  }
  RL_TRY(image->raw_->watch_updates([target = image.get()] { target->header_may_have_changed(); }));
  return image;
}

Result<std::unique_ptr<EncryptedRbdImage>> EncryptedRbdImage::open(rados_ioctx_t io, const std::string& name,
                                                                   const std::optional<std::string>& snapshot,
                                                                   bool read_only, std::span<const uint8_t> passphrase,
                                                                   const DispatchOptions& options) {
  const std::string path = "rbd:" + pool_path(io) + "/" + name;
  const std::string full_name = snapshot ? path + "@" + *snapshot : path;
  // Our own I/O context on the same pool and namespace: the caller's may go before the image does.
  rados_ioctx_t own_io = nullptr;
  if (const int r = rados_ioctx_create2(rados_ioctx_get_cluster(io), rados_ioctx_get_id(io), &own_io); r < 0) {
    return librbd_error(r, "open pool of " + full_name);
  }
  IoCtxHandle ioctx(own_io, rados_ioctx_destroy);
  char name_space[256] = {};
  if (rados_ioctx_get_namespace(io, name_space, sizeof name_space - 1) >= 0)
    rados_ioctx_set_namespace(own_io, name_space);

  RL_ASSIGN(auto raw, open_rbd_image(nullptr, std::move(ioctx), name, snapshot,
                                     read_only ? OpenMode::read_only : OpenMode::read_write, full_name));
  return open(std::move(raw), passphrase, options);
}

Result<uint64_t> EncryptedRbdImage::size() {
  RL_ASSIGN(const uint64_t raw_size, raw_->size());
  return data_segment_size(raw_size, layout_.data_offset, sector_size_, layout_.data_size);
}

Result<std::vector<Extent>> EncryptedRbdImage::allocated_extents(uint64_t offset, uint64_t length) {
  RL_ASSIGN(const auto raw, raw_->allocated_extents(layout_.data_offset + offset, length));
  return plaintext_extents(raw, layout_.data_offset, sector_size_, offset, length);
}

Status EncryptedRbdImage::header_status() const {
  if (!stale_.load(std::memory_order_acquire)) return {};
  const std::lock_guard lock(header_mutex_);
  return Error(Errc::failure, name() + ": " + stale_reason_ +
                                  "; its I/O stopped, so that nothing more is written with a key the header no "
                                  "longer holds: close and reopen the image");
}

Result<bool> EncryptedRbdImage::reencryption_recorded() {
  auto header = read_luks2_header(*raw_);
  if (!header) {
    if (layout_.version == 1) return false;  // LUKS1 has no reencryption state
    return std::move(header).error();
  }
  return luks2_reencrypt_in_progress(header->header.metadata);
}

bool EncryptedRbdImage::reencryption_unfinished() const {
  const std::lock_guard lock(header_mutex_);
  return header_ours_;
}

Status EncryptedRbdImage::snap_rollback(const std::string& snapshot) {
  {
    const std::lock_guard lock(header_mutex_);
    if (header_ours_) {
      return Error(Errc::failure, name() +
                                      ": a reencryption of it is running or stopped half way; roll it back "
                                      "once `rbd-luks reencrypt` has finished it");
    }
  }
  return raw_->snap_rollback(snapshot);
}

Status EncryptedRbdImage::resize(uint64_t size) {
  if (layout_.data_size) {
    return Error(Errc::unsupported, name() + ": the LUKS2 data segment has a fixed size, so it cannot be resized");
  }
  if (size % sector_size_ != 0 || size > UINT64_MAX - layout_.data_offset) {
    return Error(Errc::usage, name() + ": resize to " + std::to_string(size) +
                                  " bytes: the size must be a multiple of the sector size (" +
                                  std::to_string(sector_size_) + ")");
  }
  {
    const std::lock_guard lock(header_mutex_);
    if (header_ours_) {
      return Error(Errc::failure, name() +
                                      ": a reencryption of it is running or stopped half way; resize it "
                                      "once `rbd-luks reencrypt` has finished it");
    }
  }
  // A header change like the CLI's (header_lock.h), so that it never interleaves with another's.
  RL_ASSIGN(auto header_lock, raw_->lock_header("librbd_luks resize"));
  if (const auto replaced = header_replaced()) stop_io(*replaced);
  RL_TRY(header_status());
  RL_TRY(raw_->resize(layout_.data_offset + size));
  return header_lock->release();
}

// ---- Submission ----

void EncryptedRbdImage::aio_read(uint64_t offset, std::span<uint8_t> out, Callback done, int op_flags) {
  const iovec one{out.data(), out.size()};
  submit(Op::read, offset, out.size(), {&one, 1}, std::move(done), op_flags);
}

void EncryptedRbdImage::aio_readv(uint64_t offset, std::span<const iovec> out, Callback done, int op_flags) {
  uint64_t length = 0;
  for (const iovec& v : out) length += v.iov_len;
  submit(Op::read, offset, length, out, std::move(done), op_flags);
}

void EncryptedRbdImage::aio_write(uint64_t offset, std::span<const uint8_t> data, Callback done, int op_flags) {
  // The data is only ever read from; iovec just has no const.
  const iovec one{const_cast<uint8_t*>(data.data()), data.size()};
  submit(Op::write, offset, data.size(), {&one, 1}, std::move(done), op_flags);
}

void EncryptedRbdImage::aio_writev(uint64_t offset, std::span<const iovec> data, Callback done, int op_flags) {
  uint64_t length = 0;
  for (const iovec& v : data) length += v.iov_len;
  submit(Op::write, offset, length, data, std::move(done), op_flags);
}

void EncryptedRbdImage::aio_write_zeroes(uint64_t offset, uint64_t length, Callback done) {
  submit(Op::zero, offset, length, {}, std::move(done), 0);
}

void EncryptedRbdImage::aio_discard(uint64_t offset, uint64_t length, Callback done) {
  submit(Op::zero, offset, length, {}, std::move(done), 0);
}

void EncryptedRbdImage::aio_flush(Callback done) { submit(Op::flush, 0, 0, {}, std::move(done), 0); }

// librbd's rule (its clip_io): an empty request is always fine, one that starts at or past the end
// fails, one that runs past the end is cut short there and reports the bytes it covered.
ssize_t EncryptedRbdImage::check_request(Op op, uint64_t offset, uint64_t& length) {
  if (stale_.load(std::memory_order_acquire)) return -ESTALE;
  if (op == Op::flush) return 0;
  if (op != Op::read && read_only()) return -EROFS;
  if (length == 0) return 0;
  auto size = this->size();
  if (!size) return negative_errno(size.error());  // librbd refreshes the header first, which can fail
  if (offset >= *size) return -EINVAL;
  length = std::min(length, *size - offset);
  return 0;
}

SectorSpan EncryptedRbdImage::next_piece(uint64_t position, uint64_t end) const {
  const uint64_t grid_position = grid_.origin + position;
  const uint64_t boundary = (grid_position / grid_.bytes + 1) * grid_.bytes - grid_.origin;
  return cover_sectors(position, std::min(end, boundary) - position, sector_size_);
}

EncryptedRbdImage::Piece* EncryptedRbdImage::add_piece(Request* request, const SectorSpan& span) {
  if (request->piece_count == request->pieces.size()) request->pieces.push_back(std::make_unique<Piece>());
  Piece* piece = request->pieces[request->piece_count++].get();
  piece->image = this;
  piece->request = request;
  piece->span = span;
  piece->rmw_attempts = 0;
  return piece;
}

void EncryptedRbdImage::submit(Op op, uint64_t offset, uint64_t length, std::span<const iovec> buffers, Callback done,
                               int op_flags) {
  Request* request = take_request();
  // Restored on the way out, also when a completion callback submits to another image.
  struct SubmittingHere {
    const void* outer;
    ~SubmittingHere() { submitting_here = outer; }
  } const scope{std::exchange(submitting_here, request)};
  try {
    request->op = op;
    request->offset = offset;
    request->op_flags = op_flags;
    request->done = std::move(done);
    request->buffers.assign(buffers.begin(), buffers.end());
    request->error = static_cast<int>(check_request(op, offset, length));
    request->length = length;
    if (request->error != 0 || length == 0 || op == Op::flush) {
      add_piece(request, {});  // a flush, or nothing to do: completes with the error or 0 bytes
    } else if (op == Op::zero) {
      const SectorSpan span = cover_sectors(offset, length, sector_size_);
      for (uint64_t sector : partial_sectors(span)) add_piece(request, part_in_sector(span, sector));
      if (span.full_end() > span.full_begin()) {
        add_piece(request, cover_sectors(span.full_begin(), span.full_end() - span.full_begin(), sector_size_));
      }
    } else {
      for (uint64_t position = offset; position < offset + length;) {
        position = add_piece(request, next_piece(position, offset + length))->span.request_end;
      }
    }
  } catch (...) {
    recycle(request);
    throw;
  }
  request->pieces_left = request->piece_count;

  const bool torn_reads_possible = !grid_.sectors_in_one_object;
  request->unlocked_read = begin_in_flight(op == Op::read && request->error == 0 && length > 0 && !torn_reads_possible);
  if (request->error != 0 || op == Op::flush || length == 0 || request->unlocked_read) {
    start(request);
    return;
  }
  // Whole-sector writes only need to exclude read-modify-writes of the same sectors, not each other,
  // unless a sector can be half written when a read sees it.
  const SectorSpan span = cover_sectors(offset, length, sector_size_);
  const auto mode =
      op == Op::read || (span.aligned() && !torn_reads_possible) ? RangeLock::Mode::shared : RangeLock::Mode::exclusive;
  try {
    sectors_locked_.lock_async(span.begin, span.end, mode, [this, request](RangeLock::Guard guard) {
      request->guard = std::move(guard);
      // I/O may have stopped while it waited (a reencryption step that failed half way).
      if (stale_.load(std::memory_order_acquire)) request->error = -ESTALE;
      start(request);
    });
  } catch (...) {  // nothing was queued
    end_in_flight();
    recycle(request);
    throw;
  }
}

void EncryptedRbdImage::start(Request* request) {
  // Pieces may finish on other threads while later ones start, and the request is recycled once the
  // last one finishes: read everything needed first, and nothing after starting the last piece.
  const size_t count = request->piece_count;
  const Op op = request->op;
  const bool nothing_to_do = request->error != 0 || (request->length == 0 && op != Op::flush);
  for (size_t i = 0; i < count; ++i) {
    Piece* piece = request->pieces[i].get();
    if (nothing_to_do) {
      fail_later(piece, 0);  // completes with the error already recorded, or with 0 bytes
      continue;
    }
    switch (op) {
      case Op::read:
        start_read(piece);
        break;
      case Op::write:
        start_write(piece);
        break;
      case Op::zero:
        start_zero(piece);
        break;
      case Op::flush:
        start_flush(piece);
        break;
    }
  }
}

// ---- librbd completions ----
//
// Every librbd call gets a completion whose argument is the piece; the callback releases the
// completion and continues the piece's chain with Step.

template <void (EncryptedRbdImage::*Step)(EncryptedRbdImage::Piece*, ssize_t)>
void EncryptedRbdImage::on_librbd_done(void* arg, ssize_t r) {
  auto* piece = static_cast<Piece*>(arg);
  (piece->image->*Step)(piece, r);
}

// ---- Reads ----

void EncryptedRbdImage::start_read(Piece* piece) {
  const SectorSpan& span = piece->span;
  const int r = raw_->aio_read(layout_.data_offset + span.begin, span.size(), piece->data, piece->request->op_flags,
                               &on_librbd_done<&EncryptedRbdImage::read_done>, piece);
  if (r < 0) fail_later(piece, r);
}

void EncryptedRbdImage::read_done(Piece* piece, ssize_t r) {
  // librbd clips reads at the end of the image; a short read means the image shrank under us.
  if (r >= 0 && (static_cast<uint64_t>(r) != piece->span.size() || piece->data.size() != piece->span.size())) r = -EIO;
  if (r < 0) {
    piece_done(piece, r);
    return;
  }
  note_ciphertext(piece->span.size());
  // The ciphertext has just arrived on this thread, librbd's completion thread, so it is decrypted
  // here: handing a large piece to a worker costs more than the decryption saves (docs/
  // performance.md, "Threads and memory"). But these threads complete every request in the
  // process, so only one large decryption at a time runs on them; the others go to the workers,
  // which keeps completions flowing and spreads bursts of large reads over the cores.
  if (piece->span.size() <= inline_crypto_bytes_) {
    decrypt_and_finish(piece);
  } else if (!large_decryption_on_completion_thread.exchange(true, std::memory_order_relaxed)) {
    decrypt_into_callers_buffers(piece);
    large_decryption_on_completion_thread.store(false, std::memory_order_relaxed);
    piece_done(piece, 0);  // after the flag: the request's callback may run long
  } else {
    workers_.post([this, piece] { decrypt_and_finish(piece); });
  }
}

void EncryptedRbdImage::decrypt_and_finish(Piece* piece) {
  decrypt_into_callers_buffers(piece);
  piece_done(piece, 0);
}

void EncryptedRbdImage::decrypt_into_callers_buffers(Piece* piece) {
  const SectorSpan& span = piece->span;
  const Request& request = *piece->request;
  piece->from.clear();
  piece->data.views(piece->from);
  piece->to.clear();
  for_each_segment(request.buffers, span.request_begin - request.offset, span.request_end - span.request_begin,
                   [&](uint8_t* data, size_t n) { piece->to.emplace_back(data, n); });
  decrypt_scattered(*cipher_, span, piece->from, piece->to);
}

// ---- Writes and zeroing ----

void EncryptedRbdImage::start_write(Piece* piece) {
  const PartialSectors partial = partial_sectors(piece->span);
  if (partial.count == 0) {
    encrypt_piece(piece);
    return;
  }
  piece->read_error = 0;
  piece->reads_left = static_cast<int>(partial.count);
  for (size_t i = 0; i < partial.count; ++i) piece->edges[i].clear();  // from an earlier try
  for (size_t i = 0; i < partial.count; ++i) {
    const int r = raw_->aio_read(layout_.data_offset + partial.offsets[i], sector_size_, piece->edges[i], 0,
                                 &on_librbd_done<&EncryptedRbdImage::partial_sector_read>, piece);
    if (r < 0) {
      // Counted as done here; the error goes out with the piece's last read.
      int none = 0;
      piece->read_error.compare_exchange_strong(none, r);
      if (piece->reads_left.fetch_sub(1) == 1) fail_later(piece, piece->read_error);
    }
  }
}

void EncryptedRbdImage::partial_sector_read(Piece* piece, ssize_t r) {
  if (r >= 0 && static_cast<uint64_t>(r) != sector_size_) r = -EIO;  // the edge buffers' sizes are checked on use
  if (r < 0) {
    int none = 0;
    piece->read_error.compare_exchange_strong(none, static_cast<int>(r));
  }
  if (piece->reads_left.fetch_sub(1) != 1) return;
  if (piece->read_error != 0) {
    piece_done(piece, piece->read_error);
    return;
  }
  encrypt_piece(piece);
}

// The caller's bytes for span's part of the request, when they lie in one of its buffers.
std::optional<std::span<const uint8_t>> EncryptedRbdImage::contiguous_bytes(const Request& request,
                                                                            const SectorSpan& span) {
  std::optional<std::span<const uint8_t>> bytes;
  const uint64_t length = span.request_end - span.request_begin;
  for_each_segment(request.buffers, span.request_begin - request.offset, length, [&](uint8_t* data, size_t n) {
    if (n == length) bytes.emplace(data, n);
  });
  return bytes;
}

void EncryptedRbdImage::encode_and_write(Piece* piece) {
  const SectorSpan& span = piece->span;
  Request& request = *piece->request;
  // The size of what librbd's C API would copy a plain write into (and keep past its completion,
  // while librbd's cache is on), plus at most 63 bytes to start on a cache line: rbd-luks encrypts
  // into it instead.
  const std::span<uint8_t> buffer = piece->data.replace_with_new_buffer(span.size());
  note_ciphertext(span.size());
  const PartialSectors partial = partial_sectors(span);
  std::array<uint32_t, 2> zero_units_read{};
  for (size_t i = 0; i < partial.count; ++i) {
    const std::span<uint8_t> sector = span.sector_in(buffer, partial.offsets[i]);
    const RbdBufferList& edge = piece->edges[i];  // kept: the compares need what was read
    if (edge.size() != sector.size()) {
      piece_done(piece, -EIO);
      return;
    }
    edge.copy_to(sector);
    zero_units_read[i] = zero_units(sector);
    decrypt_sectors(*cipher_, sector, sector_size_, partial.offsets[i]);
  }
  if (request.op == Op::zero) {
    encode_zeroes(*cipher_, buffer, span);
  } else if (const auto contiguous = contiguous_bytes(request, span)) {
    encode_write(*cipher_, buffer, span, *contiguous);
  } else {
    // Copied in and encrypted a chunk at a time, so the cipher finds the bytes still in cache: one
    // pass over memory instead of two.
    for (uint64_t at = span.begin; at < span.end; at += kCryptoChunkBytes) {
      const uint64_t chunk_end = std::min(span.end, at + kCryptoChunkBytes);
      const uint64_t from = std::max(at, span.request_begin);
      const uint64_t to = std::min(chunk_end, span.request_end);
      if (from < to) {
        uint8_t* into = buffer.data() + (from - span.begin);
        for_each_segment(request.buffers, from - request.offset, to - from, [&](uint8_t* data, size_t n) {
          std::memcpy(into, data, n);
          into += n;
        });
      }
      encrypt_sectors(*cipher_, buffer.subspan(at - span.begin, chunk_end - at), sector_size_, at);
    }
  }

  if (partial.count != 0 && compare_partial_units_) {
    write_back_rmw(piece, zero_units_read);
    return;
  }
  // librbd takes its own reference to the buffer, so the piece may let go of it as soon as it
  // completes (on any thread, possibly before aio_write returns).
  const int r = raw_->aio_write(layout_.data_offset + span.begin, piece->data, request.op_flags,
                                &on_librbd_done<&EncryptedRbdImage::piece_done>, piece);
  if (r < 0) fail_later(piece, r);
}

void EncryptedRbdImage::write_back_rmw(Piece* piece, const std::array<uint32_t, 2>& zero_units_read) {
  const SectorSpan& span = piece->span;
  const RmwPlan plan = plan_rmw(span, zero_units_read);
  const PartialSectors partial = partial_sectors(span);
  while (piece->rmw_ops.size() < plan.count) piece->rmw_ops.push_back(std::make_unique<RmwOp>());
  // Everything is set up before the first write goes out: the last one to complete may start the
  // piece over or finish its request, and nothing is touched after issuing it.
  for (size_t i = 0; i < plan.count; ++i) {
    const RmwWrite& write = plan.writes[i];
    RmwOp& op = *piece->rmw_ops[i];
    op.piece = piece;
    op.kind = write.kind;
    op.data.share(piece->data, write.begin - span.begin, write.end - write.begin);
    if (write.kind == RmwWrite::Kind::compare) {
      const size_t edge = round_down(write.begin, sector_size_) == partial.offsets[0] ? 0 : 1;
      op.expected.share(piece->edges[edge], write.begin - partial.offsets[edge], kAtomicUnit);
    } else if (write.kind == RmwWrite::Kind::fill) {
      op.expected.replace_with_zeros(kAtomicUnit);
    }
  }
  piece->rmw_error = 0;
  piece->rmw_changed = false;
  piece->rmw_left = plan.count;
  const int op_flags = piece->request->op_flags;
  for (size_t i = 0; i < plan.count; ++i) {
    RmwOp* op = piece->rmw_ops[i].get();
    const uint64_t at = layout_.data_offset + plan.writes[i].begin;
    const int r = op->kind == RmwWrite::Kind::whole
                      ? raw_->aio_write(at, op->data, op_flags, &on_rmw_write_done, op)
                      : raw_->aio_compare_and_write(at, op->expected, op->data, &op->mismatch_offset, op_flags,
                                                    &on_rmw_write_done, op);
    if (r < 0) workers_.post([this, op, r] { rmw_write_done(op, r); });
  }
}

void EncryptedRbdImage::on_rmw_write_done(void* arg, ssize_t r) {
  auto* op = static_cast<RmwOp*>(arg);
  op->piece->image->rmw_write_done(op, r);
}

void EncryptedRbdImage::rmw_write_done(RmwOp* op, ssize_t r) {
  Piece* piece = op->piece;
  if (r == -EILSEQ && op->kind == RmwWrite::Kind::compare) {
    piece->rmw_changed = true;
  } else if (r < 0 && !(r == -EILSEQ && op->kind == RmwWrite::Kind::fill)) {
    // (A fill that finds no zeros any more: another client wrote that unit meanwhile, and it stays.)
    int none = 0;
    piece->rmw_error.compare_exchange_strong(none, static_cast<int>(r));
  }
  op->expected.clear();
  op->data.clear();
  if (piece->rmw_left.fetch_sub(1) != 1) return;
  if (piece->rmw_error != 0) {
    piece_done(piece, piece->rmw_error);
  } else if (!piece->rmw_changed) {
    piece_done(piece, 0);
  } else if (++piece->rmw_attempts == kMaxRmwAttempts) {
    piece_done(piece, -EIO);
  } else {
    start_write(piece);  // read the partial sectors again, as another client left them
  }
}

void EncryptedRbdImage::start_zero(Piece* piece) {
  if (!piece->span.aligned()) {
    start_write(piece);  // a partial sector: written back re-encrypted with the request's bytes zeroed
    return;
  }
  // Whole sectors become holes: all-zero ciphertext, which reads back as zeros.
  const int r = raw_->aio_write_zeroes(layout_.data_offset + piece->span.begin, piece->span.size(),
                                       &on_librbd_done<&EncryptedRbdImage::piece_done>, piece);
  if (r < 0) fail_later(piece, r);
}

void EncryptedRbdImage::start_flush(Piece* piece) {
  const int r = raw_->aio_flush(&on_librbd_done<&EncryptedRbdImage::piece_done>, piece);
  if (r < 0) fail_later(piece, r);
}

// ---- Completion ----

void EncryptedRbdImage::encrypt_piece(Piece* piece) {
  // A write's last piece, still on the thread that submits it, is encrypted right here. That thread
  // would otherwise only hand it over and wait for nothing, and its encryption takes the place of
  // the copy that plain librbd's C API makes on the same thread. Its other pieces go to the workers
  // meanwhile, as do large pieces that waited for their edge sectors (on librbd's completion thread).
  const Request& request = *piece->request;
  const bool last_piece_in_submit = encrypt_on_submitting_thread_ && submitting_here == &request &&
                                    piece == request.pieces[request.piece_count - 1].get();
  if (piece->span.size() <= inline_crypto_bytes_ || last_piece_in_submit) {
    encode_and_write(piece);
  } else {
    workers_.post([this, piece] { encode_and_write(piece); });
  }
}

void EncryptedRbdImage::fail_later(Piece* piece, int r) {
  workers_.post([this, piece, r] { piece_done(piece, r); });
}

void EncryptedRbdImage::piece_done(Piece* piece, ssize_t r) {
  Request* request = piece->request;
  if (r < 0) {
    int none = 0;
    request->error.compare_exchange_strong(none, static_cast<int>(r));
  }
  // Dropped now rather than when the piece is reused: librbd's buffers go back as soon as possible.
  piece->data.clear();
  for (auto& edge : piece->edges) edge.clear();
  if (request->pieces_left.fetch_sub(1) == 1) finish(request);
}

void EncryptedRbdImage::finish(Request* request) {
  const int error = request->error;
  const ssize_t result = error != 0 ? error : request->op == Op::flush ? 0 : static_cast<ssize_t>(request->length);
  Callback done = std::move(request->done);
  // Requests that waited for this range may start here; they only queue work, so this is quick.
  request->guard.release();
  const bool unlocked_read = request->unlocked_read;
  recycle(request);
  done(result);
  end_in_flight(unlocked_read);
}

bool EncryptedRbdImage::rewriting_overlaps(uint64_t at, uint64_t length) {
  const std::lock_guard lock(header_mutex_);
  return rewriting_ && rewriting_->first < at + length && at < rewriting_->second;
}

void EncryptedRbdImage::lock_every_read() {
  std::unique_lock lock(in_flight_mutex_);
  every_read_locked_ = true;
  idle_.wait(lock, [&] { return unlocked_reads_ == 0; });
}

// ---- Header changes by other clients ----

void EncryptedRbdImage::set_update_listener(std::function<void()> listener) {
  const std::lock_guard lock(listener_mutex_);
  update_listener_ = std::move(listener);
}

void EncryptedRbdImage::header_may_have_changed() {
  {
    const std::lock_guard lock(listener_mutex_);
    if (update_listener_) update_listener_();
  }
  {
    const std::lock_guard lock(header_mutex_);
    if (header_ours_) return;
    if (header_check_running_) {
      header_check_again_ = true;
      return;
    }
    header_check_running_ = true;
  }
  // Not here: this is librbd's thread, which the header's reads would wait for.
  begin_in_flight();
  workers_.post([this] { check_header(); });
}

void EncryptedRbdImage::check_header() {
  for (;;) {
    // A check that began before reencrypt() took the header may read the header that the run wrote.
    if (const auto replaced = header_replaced()) stop_io(*replaced, true);
    const std::lock_guard lock(header_mutex_);
    if (!std::exchange(header_check_again_, false)) {
      header_check_running_ = false;
      break;
    }
  }
  end_in_flight();
}

std::optional<std::string> EncryptedRbdImage::header_replaced() {
  if (stale_.load(std::memory_order_acquire)) return std::nullopt;  // already stopped
  auto volume = load_luks(*raw_);
  if (!volume) {
    if (!volume.error().is(Errc::bad_header) && !volume.error().is(Errc::unsupported)) return std::nullopt;
    return "its LUKS header is gone (" + volume.error().message() + ")";
  }
  const VolumeLayout& now = (*volume)->layout();
  const std::lock_guard lock(key_mutex_);
  if (now.uuid != layout_.uuid || now.version != layout_.version || now.cipher != key_cipher_ ||
      now.key_bytes != key_bytes_ || now.sector_size != layout_.sector_size || now.data_offset != layout_.data_offset ||
      now.data_size != layout_.data_size) {
    return "another client wrote a new LUKS header (uuid " + now.uuid + ", was " + layout_.uuid + ")";
  }
  if (!(*volume)->verify_volume_key(volume_key_.span())) {
    return "its LUKS header no longer holds the volume key it was opened with";
  }
  return std::nullopt;
}

void EncryptedRbdImage::stop_io(const std::string& reason, bool unless_ours) {
  const std::lock_guard lock(header_mutex_);
  if (stale_.load(std::memory_order_relaxed) || (unless_ours && header_ours_)) return;
  stale_reason_ = reason;
  stale_.store(true, std::memory_order_release);
}

// ---- Request recycling and in-flight accounting ----

EncryptedRbdImage::Request* EncryptedRbdImage::take_request() {
  {
    const std::lock_guard lock(requests_mutex_);
    if (!free_requests_.empty()) {
      Request* request = free_requests_.back().release();
      free_requests_.pop_back();
      return request;
    }
  }
  return new Request;
}

void EncryptedRbdImage::recycle(Request* request) {
  std::unique_ptr<Request> owned(request);
  owned->done = nullptr;
  owned->buffers.clear();
  owned->piece_count = 0;
  owned->error = 0;
  const std::lock_guard lock(requests_mutex_);
  if (free_requests_.size() < kMaxFreeRequests) free_requests_.push_back(std::move(owned));
}

bool EncryptedRbdImage::begin_in_flight(bool read_without_lock) {
  const std::lock_guard lock(in_flight_mutex_);
  ++in_flight_;
  if (!read_without_lock || every_read_locked_) return false;
  ++unlocked_reads_;
  return true;
}

void EncryptedRbdImage::end_in_flight(bool unlocked_read) {
  // Notified under the lock: the destructor may free idle_ the moment it sees zero.
  const std::lock_guard lock(in_flight_mutex_);
  const bool last_unlocked_read = unlocked_read && --unlocked_reads_ == 0;
  if (--in_flight_ == 0 || last_unlocked_read) idle_.notify_all();
}

void EncryptedRbdImage::wait_until_idle() {
  std::unique_lock lock(in_flight_mutex_);
  idle_.wait(lock, [&] { return in_flight_ == 0; });
}

// ---- Synchronous forms ----

template <typename Submit>
ssize_t EncryptedRbdImage::wait_for(Submit submit) {
  struct Waiter {
    std::mutex mutex;
    std::condition_variable done;
    std::optional<ssize_t> result;
  } waiter;
  submit([&waiter](ssize_t r) {
    const std::lock_guard lock(waiter.mutex);
    waiter.result = r;
    waiter.done.notify_one();
  });
  std::unique_lock lock(waiter.mutex);
  waiter.done.wait(lock, [&] { return waiter.result.has_value(); });
  return *waiter.result;
}

ssize_t EncryptedRbdImage::read(uint64_t offset, std::span<uint8_t> out, int op_flags) {
  return wait_for([&](Callback done) { aio_read(offset, out, std::move(done), op_flags); });
}

ssize_t EncryptedRbdImage::write(uint64_t offset, std::span<const uint8_t> data, int op_flags) {
  return wait_for([&](Callback done) { aio_write(offset, data, std::move(done), op_flags); });
}

ssize_t EncryptedRbdImage::write_zeroes(uint64_t offset, uint64_t length) {
  return wait_for([&](Callback done) { aio_write_zeroes(offset, length, std::move(done)); });
}

ssize_t EncryptedRbdImage::discard(uint64_t offset, uint64_t length) {
  return wait_for([&](Callback done) { aio_discard(offset, length, std::move(done)); });
}

ssize_t EncryptedRbdImage::flush() {
  return wait_for([&](Callback done) { aio_flush(std::move(done)); });
}

// ---- Online reencryption ----

Result<ReencryptReport> EncryptedRbdImage::reencrypt(const std::vector<std::span<const uint8_t>>& passphrases,
                                                     ReencryptOptions options, unsigned shared_handles,
                                                     std::chrono::milliseconds grace) {
  if (read_only()) return Error(Errc::usage, name() + " is open read-only; a reencryption rewrites it");
  if (options.hotzone_bytes == 0) options.hotzone_bytes = kOnlineHotzoneBytes;
  if (options.sector_size && *options.sector_size != sector_size_) {
    return Error(Errc::usage, name() + ": an online reencryption keeps the sector size (" +
                                  std::to_string(sector_size_) +
                                  "); change it with `rbd-luks reencrypt` "
                                  "while no client has the image open");
  }
  const std::unique_lock one_run(reencrypt_mutex_, std::try_to_lock);
  if (!one_run.owns_lock()) return Error(Errc::failure, name() + ": a reencryption of it is running already");
  if (cipher_->begun()) {
    return Error(Errc::usage, name() + " was reencrypted once since it was opened; close and reopen it first");
  }
  RL_TRY(header_status());
  RL_ASSIGN(const bool recorded, reencryption_recorded());
  if (recorded) {
    return Error(Errc::usage, name() +
                                  ": its header records a reencryption already; `rbd-luks reencrypt` finishes it "
                                  "with the image closed");
  }
  const std::string why = "it would go on reading and writing the data under the old key; close it first";
  if (auto alone = raw_->refuse_other_clients(why, shared_handles); !alone) {
    if (!alone.error().is(Errc::failure)) return std::move(alone).error();
    return Error(std::make_error_code(std::errc::device_or_resource_busy), alone.error().message());
  }
  RL_ASSIGN(auto header_lock, raw_->lock_header("librbd_luks reencrypt"));
  ReencryptReport report;
  RL_TRY(run_reencryption(passphrases, options, shared_handles, grace, report));
  RL_TRY(header_lock->release());
  return report;
}

Status EncryptedRbdImage::run_reencryption(const std::vector<std::span<const uint8_t>>& passphrases,
                                           ReencryptOptions& options, unsigned shared_handles,
                                           std::chrono::milliseconds grace, ReencryptReport& report) {
  {
    const std::lock_guard lock(header_mutex_);
    header_ours_ = true;
  }
  // After the header records the run, and before every hotzone: a client that opened the image
  // since the run began (one that ignores the header, or a host that mapped it) must not write under
  // a boundary it does not know. Opens that come and go (an admin's `rbd snap create`), the watch a
  // crashed client leaves until the OSD times it out (osd_client_watch_timeout, 30 s) and errors of
  // the watcher list itself are waited out; a stop ends the wait.
  const auto alone = [this, shared_handles, grace, &options] {
    const auto give_up = std::chrono::steady_clock::now() + grace;
    for (;;) {
      auto checked = raw_->refuse_other_clients("close it, then run `rbd-luks reencrypt`", shared_handles);
      if (checked || std::chrono::steady_clock::now() >= give_up) return checked;
      for (int i = 0; i < 5; ++i) {
        if (options.stop_requested && options.stop_requested()) {
          return Status(Error(Errc::failure, name() + ": stopped while waiting for another client to go (" +
                                                 checked.error().message() + ")"));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  };
  options.check_alone = alone;
  options.online.between_steps = alone;
  SecureBuffer new_key;  // the begin hook's copy
  options.online.begin = [&](std::shared_ptr<const XtsCipher> new_cipher, std::span<const uint8_t> key,
                             uint64_t progress) -> Status {
    new_key = SecureBuffer::copy_of(key);
    lock_every_read();
    cipher_->begin(std::move(new_cipher), progress);
    return {};
  };
  options.online.hold = [this](uint64_t at, uint64_t length) -> std::shared_ptr<void> {
    auto* held = new RangeLock::Guard(sectors_locked_.lock(at, at + length, RangeLock::Mode::exclusive));
    // Released when the step is done, or when the run failed: then, if the step had recorded the
    // hotzone in the header (the rewriting hook), I/O stops before anything else reaches it.
    return {held, [this, at, length](void* guard) {
              const std::unique_ptr<RangeLock::Guard> owned(static_cast<RangeLock::Guard*>(guard));
              if (rewriting_overlaps(at, length)) {
                stop_io("the online reencryption failed in its step over plaintext bytes [" + std::to_string(at) +
                        ", " + std::to_string(at + length) + "), which only the header's checksums sort into " +
                        "old and new now; `rbd-luks reencrypt` finishes the run once the image is closed");
              }
            }};
  };
  options.online.rewriting = [this](uint64_t at, uint64_t length) {
    const std::lock_guard lock(header_mutex_);
    rewriting_.emplace(at, at + length);
  };
  options.online.advance = [this](uint64_t progress) {
    cipher_->advance(progress);
    const std::lock_guard lock(header_mutex_);
    rewriting_.reset();
  };
  auto ran = reencrypt_luks2(*raw_, passphrases, options);
  // Unless the header still records the run (stopped, or failed half way, or unreadable now), header
  // checks resume: against the new key once the run wrote its last header (even if a wipe after it
  // failed), else against the old one, which a run that failed before its first header left.
  const auto recorded = reencryption_recorded();
  if (!recorded || *recorded) {
    if (!ran) return std::move(ran).error();
    if (!recorded) return recorded.error();
    return Error(Errc::failure, name() + ": the run ended, but the header still records it");
  }
  if (cipher_->begun()) {
    RL_ASSIGN(auto volume, load_luks(*raw_));
    if (!volume->verify_volume_key(new_key.span())) {
      return Error(Errc::failure, name() + ": the header holds neither the run nor its new key");
    }
    cipher_->finish();
    const std::lock_guard lock(key_mutex_);
    volume_key_ = std::move(new_key);
    key_cipher_ = volume->layout().cipher;
    key_bytes_ = volume->layout().key_bytes;
  }
  {
    const std::lock_guard lock(header_mutex_);
    header_ours_ = false;
  }
  if (!ran) return std::move(ran).error();
  report = std::move(*ran);
  return {};
}

}  // namespace rbdluks
