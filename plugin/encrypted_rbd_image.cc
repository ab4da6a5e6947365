// EncryptedRbdImage: a request is planned into pieces when it is submitted (so allocation failures
// surface there, before anything is issued), waits for its sector range when it writes, then every
// piece runs its own chain of librbd completions:
//   read:  [bounce lease] -> rbd read -> decrypt (here or on a worker) -> done
//   write: bounce lease -> [read partial sectors] -> encrypt (here or on a worker) -> rbd write -> done
//   zero:  whole sectors: rbd write_zeroes -> done; a partial sector: like a write of zeros
// The last piece to finish releases the range and calls back. Requests are recycled together with
// their pieces and iovec vectors, so these cost no allocation in a steady stream of I/O.
#include "encrypted_rbd_image.h"

#include <climits>
#include <cstring>
#include <system_error>
#include <utility>

#include "cipher_spec.h"

namespace rbdluks {
namespace {

// Largest piece: a bounce buffer holds one, so this bounds the large pool's buffers.
constexpr uint64_t kMaxPieceBytes = uint64_t{4} << 20;
// Recycled requests kept beyond this are freed: enough for any sane queue depth.
constexpr size_t kMaxFreeRequests = 256;
// Writes are copied into the bounce buffer and encrypted in chunks of this size (a multiple of
// every sector size), small enough to stay in the L2 cache between the two steps.
constexpr uint64_t kCryptoChunkBytes = uint64_t{64} << 10;

// The request whose submit() is running on this thread, if any (see EncryptedRbdImage::crypto).
thread_local const void* submitting_here = nullptr;

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
  std::optional<BufferPool::Lease> bounce;
  // Reads: whole sectors go straight into the caller's buffers (`segments`); only partial edge
  // sectors use the bounce buffer, head first.
  bool direct = false;
  std::vector<iovec> segments;
  std::vector<iovec> raw_iov;  // what librbd reads into
  // Writes: partial sectors still being read, and the first error among those reads.
  std::atomic<int> reads_left{0};
  std::atomic<int> read_error{0};
};

struct EncryptedRbdImage::Request {
  Op op = Op::read;
  uint64_t offset = 0;
  uint64_t length = 0;
  int op_flags = 0;
  std::vector<iovec> buffers;  // the caller's, for reads and writes
  Callback done;
  RangeLock::Guard guard;
  std::atomic<size_t> pieces_left{0};
  std::atomic<int> error{0};                   // the first failure, a negative errno
  std::vector<std::unique_ptr<Piece>> pieces;  // the first piece_count are this request's
  size_t piece_count = 0;
};

EncryptedRbdImage::EncryptedRbdImage(std::unique_ptr<RbdImage> raw, std::shared_ptr<const XtsCipher> cipher,
                                     VolumeLayout layout, PieceGrid grid, const DispatchOptions& options)
    : raw_(std::move(raw)),
      cipher_(std::move(cipher)),
      layout_(std::move(layout)),
      sector_size_(layout_.sector_size),
      grid_(grid),
      librbd_copies_writes_(raw_->copies_async_writes()),
      inline_crypto_bytes_(std::max<size_t>(options.inline_crypto_bytes, size_t{2} * layout_.sector_size)),
      small_buffers_(inline_crypto_bytes_, std::max<size_t>(options.small_buffers, 1)),
      large_buffers_(std::max<uint64_t>(grid.bytes, inline_crypto_bytes_), std::max<size_t>(options.large_buffers, 1)),
      workers_(options.worker_threads != 0 ? options.worker_threads : WorkerPool::default_threads()) {}

EncryptedRbdImage::~EncryptedRbdImage() {
  std::unique_lock lock(in_flight_mutex_);
  idle_.wait(lock, [&] { return in_flight_ == 0; });
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
  rbd_image_info_t info{};
  if (const int r = rbd_stat(raw->handle(), &info, sizeof info); r < 0) return librbd_error(r, "stat " + raw->name());
  uint64_t stripe_unit = 0;
  if (const int r = rbd_get_stripe_unit(raw->handle(), &stripe_unit); r < 0) {
    return librbd_error(r, "stripe unit of " + raw->name());
  }
  const uint64_t granule = std::min<uint64_t>(stripe_unit, info.obj_size);
  const bool on_grid = granule % layout.sector_size == 0 && layout.data_offset % layout.sector_size == 0;
  const PieceGrid grid = on_grid ? PieceGrid{std::min(granule, kMaxPieceBytes), layout.data_offset, true}
                                 : PieceGrid{kMaxPieceBytes, 0, false};

  try {
    return std::unique_ptr<EncryptedRbdImage>(new EncryptedRbdImage(
        std::move(raw), std::shared_ptr<const XtsCipher>(std::move(*cipher)), std::move(layout), grid, options));
  } catch (const std::system_error& e) {
    return Error(Errc::failure, "start crypto worker threads: " + std::string(e.what()));
  }
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

  read_only = read_only || snapshot.has_value();
  rbd_image_t image = nullptr;
  const int r = read_only ? rbd_open_read_only(own_io, name.c_str(), &image, snapshot ? snapshot->c_str() : nullptr)
                          : rbd_open(own_io, name.c_str(), &image, nullptr);
  if (r == -ENOENT) {
    return Error(Errc::not_found, snapshot ? "image " + path + " or its snapshot '" + *snapshot + "' does not exist"
                                           : "image " + path + " does not exist");
  }
  if (r < 0) return librbd_error(r, "open " + full_name);
  return open(std::make_unique<RbdImage>(nullptr, std::move(ioctx), image, full_name, read_only), passphrase, options);
}

Result<uint64_t> EncryptedRbdImage::size() {
  if (layout_.data_size) return *layout_.data_size;
  RL_ASSIGN(const uint64_t raw_size, raw_->size());
  return dynamic_data_size(raw_size, layout_.data_offset, sector_size_);
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
  return raw_->resize(layout_.data_offset + size);
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
  if (op == Op::flush) return 0;
  if (op != Op::read && read_only()) return -EROFS;
  if (length == 0) return 0;
  auto size = this->size();
  if (!size) return -EIO;
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
        Piece* piece = add_piece(request, next_piece(position, offset + length));
        if (op == Op::read) {
          piece->direct = plan_direct_read(piece);
          piece->raw_iov.reserve(piece->direct ? piece->segments.size() + 2 : 1);
        }
        position = piece->span.request_end;
      }
    }
  } catch (...) {
    recycle(request);
    throw;
  }
  request->pieces_left = request->piece_count;

  begin_in_flight();
  const bool torn_reads_possible = !grid_.sectors_in_one_object;
  if (request->error != 0 || op == Op::flush || length == 0 || (op == Op::read && !torn_reads_possible)) {
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
void EncryptedRbdImage::on_librbd_done(rbd_completion_t c, void* arg) {
  const ssize_t r = rbd_aio_get_return_value(c);
  rbd_aio_release(c);
  auto* piece = static_cast<Piece*>(arg);
  (piece->image->*Step)(piece, r);
}

template <void (EncryptedRbdImage::*Step)(EncryptedRbdImage::Piece*, ssize_t)>
int EncryptedRbdImage::completion(Piece* piece, rbd_completion_t* c) {
  return rbd_aio_create_completion(piece, &on_librbd_done<Step>, c);
}

// ---- Reads ----

bool EncryptedRbdImage::plan_direct_read(Piece* piece) {
  const SectorSpan& span = piece->span;
  const Request& request = *piece->request;
  piece->segments.clear();
  bool whole_sectors = true;
  if (span.full_end() > span.full_begin()) {
    for_each_segment(request.buffers, span.full_begin() - request.offset, span.full_end() - span.full_begin(),
                     [&](uint8_t* data, size_t n) {
                       whole_sectors = whole_sectors && n % sector_size_ == 0;
                       piece->segments.push_back({data, n});
                     });
  }
  return whole_sectors && piece->segments.size() + 2 <= IOV_MAX;
}

void EncryptedRbdImage::start_read(Piece* piece) {
  const uint64_t bounce_bytes = piece->direct ? partial_sectors(piece->span).count * sector_size_ : piece->span.size();
  if (bounce_bytes == 0) {
    issue_read(piece);
    return;
  }
  pool_for(bounce_bytes).acquire_async([this, piece](BufferPool::Lease lease) {
    piece->bounce.emplace(std::move(lease));
    issue_read(piece);
  });
}

void EncryptedRbdImage::issue_read(Piece* piece) {
  const SectorSpan& span = piece->span;
  auto& iov = piece->raw_iov;
  iov.clear();
  if (piece->direct) {
    uint8_t* edge = piece->bounce ? piece->bounce->span().data() : nullptr;
    if (span.head_partial()) iov.push_back({std::exchange(edge, edge + sector_size_), sector_size_});
    iov.insert(iov.end(), piece->segments.begin(), piece->segments.end());
    if (span.tail_partial()) iov.push_back({edge, sector_size_});
  } else {
    iov.push_back({piece->bounce->span().data(), span.size()});
  }

  rbd_completion_t c = nullptr;
  int r = completion<&EncryptedRbdImage::read_done>(piece, &c);
  if (r == 0) {
    const uint64_t raw_offset = layout_.data_offset + span.begin;
    r = iov.size() == 1 ? rbd_aio_read2(raw_->handle(), raw_offset, iov[0].iov_len, static_cast<char*>(iov[0].iov_base),
                                        c, piece->request->op_flags)
                        : rbd_aio_readv(raw_->handle(), iov.data(), static_cast<int>(iov.size()), raw_offset, c);
    if (r < 0) rbd_aio_release(c);
  }
  if (r < 0) fail_later(piece, r);
}

void EncryptedRbdImage::read_done(Piece* piece, ssize_t r) {
  // librbd clips reads at the end of the image; a short read means the image shrank under us.
  if (r >= 0 && static_cast<uint64_t>(r) != piece->span.size()) r = -EIO;
  if (r < 0) {
    piece_done(piece, r);
    return;
  }
  crypto(piece, &EncryptedRbdImage::decode_read);
}

void EncryptedRbdImage::decode_read(Piece* piece) {
  const SectorSpan& span = piece->span;
  Request& request = *piece->request;
  auto scatter = [&](uint64_t plaintext_offset, std::span<const uint8_t> bytes) {
    for_each_segment(request.buffers, plaintext_offset - request.offset, bytes.size(), [&](uint8_t* to, size_t n) {
      std::memcpy(to, bytes.data(), n);
      bytes = bytes.subspan(n);
    });
  };
  if (piece->direct) {
    uint8_t* edge = piece->bounce ? piece->bounce->span().data() : nullptr;
    for (uint64_t sector : partial_sectors(span)) {
      const std::span<uint8_t> bytes(std::exchange(edge, edge + sector_size_), sector_size_);
      decrypt_sectors(*cipher_, bytes, sector_size_, sector);
      const SectorSpan part = part_in_sector(span, sector);
      scatter(part.request_begin, bytes.subspan(part.request_begin - sector, part.request_end - part.request_begin));
    }
    uint64_t at = span.full_begin();
    for (const iovec& segment : piece->segments) {
      decrypt_sectors(*cipher_, {static_cast<uint8_t*>(segment.iov_base), segment.iov_len}, sector_size_, at);
      at += segment.iov_len;
    }
  } else {
    const std::span<uint8_t> buffer = piece->bounce->span().first(span.size());
    decrypt_sectors(*cipher_, buffer, sector_size_, span.begin);
    scatter(span.request_begin, span.window(buffer));
  }
  piece_done(piece, 0);
}

// ---- Writes and zeroing ----

void EncryptedRbdImage::start_write(Piece* piece) {
  pool_for(piece->span.size()).acquire_async([this, piece](BufferPool::Lease lease) {
    piece->bounce.emplace(std::move(lease));
    read_partial_sectors(piece);
  });
}

void EncryptedRbdImage::read_partial_sectors(Piece* piece) {
  const PartialSectors partial = partial_sectors(piece->span);
  if (partial.count == 0) {
    crypto(piece, &EncryptedRbdImage::encode_and_write);
    return;
  }
  piece->read_error = 0;
  piece->reads_left = static_cast<int>(partial.count);
  const std::span<uint8_t> buffer = piece->bounce->span().first(piece->span.size());
  for (uint64_t sector : partial) {
    rbd_completion_t c = nullptr;
    int r = completion<&EncryptedRbdImage::partial_sector_read>(piece, &c);
    if (r == 0) {
      r = rbd_aio_read2(raw_->handle(), layout_.data_offset + sector, sector_size_,
                        reinterpret_cast<char*>(piece->span.sector_in(buffer, sector).data()), c, 0);
      if (r < 0) rbd_aio_release(c);
    }
    if (r < 0) {
      // Counted as done here; the error goes out with the piece's last read.
      int none = 0;
      piece->read_error.compare_exchange_strong(none, r);
      if (piece->reads_left.fetch_sub(1) == 1) fail_later(piece, piece->read_error);
    }
  }
}

void EncryptedRbdImage::partial_sector_read(Piece* piece, ssize_t r) {
  if (r >= 0 && static_cast<uint64_t>(r) != sector_size_) r = -EIO;
  if (r < 0) {
    int none = 0;
    piece->read_error.compare_exchange_strong(none, static_cast<int>(r));
  }
  if (piece->reads_left.fetch_sub(1) != 1) return;
  if (piece->read_error != 0) {
    piece_done(piece, piece->read_error);
    return;
  }
  crypto(piece, &EncryptedRbdImage::encode_and_write);
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
  const std::span<uint8_t> buffer = piece->bounce->span().first(span.size());
  for (uint64_t sector : partial_sectors(span)) {
    decrypt_sectors(*cipher_, span.sector_in(buffer, sector), sector_size_, sector);
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

  // When librbd copies the data before rbd_aio_write2 returns (its default), the bounce buffer goes
  // back to the pool as soon as it does, still in cache for the next write; otherwise it stays on
  // loan until the write completes. Taken out of the piece first: once submitted, the piece may
  // complete and be recycled on another thread.
  std::optional<BufferPool::Lease> copied_by_librbd;
  if (librbd_copies_writes_) copied_by_librbd = std::exchange(piece->bounce, std::nullopt);
  rbd_completion_t c = nullptr;
  int r = completion<&EncryptedRbdImage::piece_done>(piece, &c);
  if (r == 0) {
    r = rbd_aio_write2(raw_->handle(), layout_.data_offset + span.begin, buffer.size(),
                       reinterpret_cast<const char*>(buffer.data()), c, request.op_flags);
    if (r < 0) rbd_aio_release(c);
  }
  if (r < 0) fail_later(piece, r);
}

void EncryptedRbdImage::start_zero(Piece* piece) {
  if (!piece->span.aligned()) {
    start_write(piece);  // a partial sector: written back re-encrypted with the request's bytes zeroed
    return;
  }
  // Whole sectors become holes: all-zero ciphertext, which reads back as zeros.
  rbd_completion_t c = nullptr;
  int r = completion<&EncryptedRbdImage::piece_done>(piece, &c);
  if (r == 0) {
    r = rbd_aio_write_zeroes(raw_->handle(), layout_.data_offset + piece->span.begin, piece->span.size(), c, 0, 0);
    if (r < 0) rbd_aio_release(c);
  }
  if (r < 0) fail_later(piece, r);
}

void EncryptedRbdImage::start_flush(Piece* piece) {
  rbd_completion_t c = nullptr;
  int r = completion<&EncryptedRbdImage::piece_done>(piece, &c);
  if (r == 0) {
    r = rbd_aio_flush(raw_->handle(), c);
    if (r < 0) rbd_aio_release(c);
  }
  if (r < 0) fail_later(piece, r);
}

// ---- Completion ----

void EncryptedRbdImage::crypto(Piece* piece, void (EncryptedRbdImage::*f)(Piece*)) {
  // A write's last piece, still on the thread that submits it, is encrypted right here. That thread
  // would otherwise only hand it over and wait for nothing: librbd's own copy of the data inside
  // rbd_aio_write costs it about as much again, and a single submitter that encrypts and writes
  // one piece at a time keeps reusing one bounce buffer that stays in cache (measured together with
  // huge-page bounce buffers: 4 MiB writes at +0.01 to +0.05 s/GB of client CPU over plain librbd
  // instead of +0.05 to +0.08). Its other pieces go to the workers meanwhile. Reads
  // finish on librbd's completion thread, which every image's requests share: large decryptions
  // leave it at once.
  const Request& request = *piece->request;
  const bool last_piece_in_submit =
      request.op != Op::read && submitting_here == &request && piece == request.pieces[request.piece_count - 1].get();
  if (piece->span.size() <= inline_crypto_bytes_ || last_piece_in_submit) {
    (this->*f)(piece);
  } else {
    workers_.post([this, piece, f] { (this->*f)(piece); });
  }
}

BufferPool& EncryptedRbdImage::pool_for(uint64_t bytes) {
  return bytes <= small_buffers_.buffer_bytes() ? small_buffers_ : large_buffers_;
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
  // May hand the buffer to a piece that waits for one, which then continues on this thread.
  piece->bounce.reset();
  if (request->pieces_left.fetch_sub(1) == 1) finish(request);
}

void EncryptedRbdImage::finish(Request* request) {
  const int error = request->error;
  const ssize_t result = error != 0 ? error : request->op == Op::flush ? 0 : static_cast<ssize_t>(request->length);
  Callback done = std::move(request->done);
  // Requests that waited for this range may start here; they only queue work, so this is quick.
  request->guard.release();
  recycle(request);
  done(result);
  end_in_flight();
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

void EncryptedRbdImage::begin_in_flight() {
  const std::lock_guard lock(in_flight_mutex_);
  ++in_flight_;
}

void EncryptedRbdImage::end_in_flight() {
  // Notified under the lock: the destructor may free idle_ the moment it sees zero.
  const std::lock_guard lock(in_flight_mutex_);
  if (--in_flight_ == 0) idle_.notify_all();
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

}  // namespace rbdluks
