// One client of rbd-luks's NBD server: the fixed newstyle handshake, then requests in, replies out
// (nbd_connection.h).
#include "nbd_connection.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "byte_fields.h"
#include "nbd_protocol.h"

namespace rbdluks::nbd {
namespace {

// The preferred block size advertised to clients: the LUKS sector rbd-luks encrypts in.
constexpr uint32_t kPreferredBlockBytes = 4096;
// The largest piece of zeros written for a write-zeroes request that must not leave a hole.
constexpr size_t kZeroPieceBytes = size_t{4} << 20;

const uint8_t* zero_piece() {
  static const std::vector<uint8_t> zeros(kZeroPieceBytes);
  return zeros.data();
}

enum class Sent { all, would_block, failed };

// Sends parts in order, adding what went to sent_bytes; with MSG_DONTWAIT in flags, stops where the
// socket would block.
Sent send_parts(int fd, std::span<iovec> parts, int flags, size_t& sent_bytes) {
  msghdr message{};
  message.msg_iov = parts.data();
  message.msg_iovlen = parts.size();
  while (message.msg_iovlen > 0) {
    const ssize_t sent = sendmsg(fd, &message, flags | MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && (flags & MSG_DONTWAIT) != 0) {
      return Sent::would_block;
    }
    if (sent <= 0) return Sent::failed;
    sent_bytes += static_cast<size_t>(sent);
    auto left = static_cast<size_t>(sent);
    while (message.msg_iovlen > 0 && left >= message.msg_iov->iov_len) {
      left -= message.msg_iov->iov_len;
      ++message.msg_iov;
      --message.msg_iovlen;
    }
    if (message.msg_iovlen > 0) {
      message.msg_iov->iov_base = static_cast<uint8_t*>(message.msg_iov->iov_base) + left;
      message.msg_iov->iov_len -= left;
    }
  }
  return Sent::all;
}

bool send_all(int fd, std::span<iovec> parts) {
  size_t sent = 0;
  return send_parts(fd, parts, 0, sent) == Sent::all;
}

bool send_bytes(int fd, std::span<const uint8_t> bytes) {
  iovec part{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  return send_all(fd, {&part, 1});
}

}  // namespace

// Reads the socket in large gulps: a client with many requests queued costs one system call for
// several of them.
class Connection::Reader {
 public:
  explicit Reader(int fd) : fd_(fd), buffer_(256 << 10) {}

  // False at end of stream or on an error.
  bool read(std::span<uint8_t> out) {
    while (!out.empty()) {
      if (begin_ == end_) {
        // What is left of a large payload goes straight to its destination.
        if (out.size() >= buffer_.size()) return read_direct(out);
        if (!fill()) return false;
      }
      const size_t n = std::min(out.size(), end_ - begin_);
      std::memcpy(out.data(), buffer_.data() + begin_, n);
      begin_ += n;
      out = out.subspan(n);
    }
    return true;
  }

 private:
  bool fill() {
    for (;;) {
      const ssize_t n = ::read(fd_, buffer_.data(), buffer_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      begin_ = 0;
      end_ = static_cast<size_t>(n);
      return true;
    }
  }

  bool read_direct(std::span<uint8_t> out) {
    while (!out.empty()) {
      const ssize_t n = ::read(fd_, out.data(), out.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      out = out.subspan(static_cast<size_t>(n));
    }
    return true;
  }

  const int fd_;
  std::vector<uint8_t> buffer_;
  size_t begin_ = 0, end_ = 0;
};

// A request between its submission and its reply.
struct Connection::Pending {
  Request request;
  std::unique_ptr<uint8_t[]> data;  // the read's destination or the write's payload
  uint64_t budget = 0;              // bytes counted against kMaxInFlightBytes
  bool flush_after = false;         // FUA on a write, trim or write-zeroes
  // The reply: its header, the data that follows it (a read's), and how much of both has gone.
  std::array<uint8_t, kSimpleReplyBytes> head{};
  std::span<const uint8_t> body;
  size_t sent = 0;

  // Sends what is left of the reply; with MSG_DONTWAIT, stops where the socket would block.
  Sent send_rest(int fd, int flags);
};

Sent Connection::Pending::send_rest(int fd, int flags) {
  std::array<iovec, 2> parts{};
  size_t count = 0;
  if (sent < head.size()) parts[count++] = {head.data() + sent, head.size() - sent};
  const size_t body_done = sent > head.size() ? sent - head.size() : 0;
  if (body_done < body.size()) {
    parts[count++] = {const_cast<uint8_t*>(body.data()) + body_done, body.size() - body_done};
  }
  return send_parts(fd, std::span(parts).first(count), flags, sent);
}

Connection::Connection(int fd, std::string peer, const Export& served, Log log)
    : fd_(fd), peer_(std::move(peer)), served_(served), log_(std::move(log)) {}

Connection::~Connection() { ::close(fd_); }

void Connection::stop() { ::shutdown(fd_, SHUT_RD); }

void Connection::abort() { ::shutdown(fd_, SHUT_RDWR); }

void Connection::serve() {
  Reader in(fd_);
  if (!handshake(in)) return;
  std::thread writer([this] { send_queued_replies(); });
  while (next_request(in)) {
  }
  {
    std::unique_lock lock(flight_lock_);
    flight_changed_.wait(lock, [this] { return requests_in_flight_ == 0; });
  }
  {
    const std::lock_guard lock(send_lock_);
    writer_stop_ = true;
  }
  queued_.notify_one();
  writer.join();
}

bool Connection::send_option_reply(uint32_t option, uint32_t type, std::span<const uint8_t> data) {
  std::array<uint8_t, 20> head{};
  store_be(head, 0, 8, kOptionReplyMagic);
  store_be(head, 8, 4, option);
  store_be(head, 12, 4, type);
  store_be(head, 16, 4, data.size());
  std::array<iovec, 2> parts{iovec{head.data(), head.size()}, iovec{const_cast<uint8_t*>(data.data()), data.size()}};
  return send_all(fd_, parts);
}

bool Connection::handshake(Reader& in) {
  std::array<uint8_t, 18> greeting{};
  store_be(greeting, 0, 8, kInitMagic);
  store_be(greeting, 8, 8, kOptionMagic);
  store_be(greeting, 16, 2, kHandshakeFixedNewstyle | kHandshakeNoZeroes);
  std::array<uint8_t, 4> client_flags{};
  if (!send_bytes(fd_, greeting) || !in.read(client_flags)) return false;
  const auto flags = static_cast<uint32_t>(load_be(client_flags, 0, 4));
  if ((flags & kClientFixedNewstyle) == 0 || (flags & ~(kClientFixedNewstyle | kClientNoZeroes)) != 0) {
    log_(peer_ + ": the client does not speak the fixed newstyle handshake (flags " + std::to_string(flags) + ")");
    return false;
  }
  client_no_zeroes_ = (flags & kClientNoZeroes) != 0;

  uint16_t transmission = kHasFlags | kSendFlush | kSendFua | kCanMultiConn;
  transmission |= served_.read_only ? kReadOnly : (kSendTrim | kSendWriteZeroes);
  for (;;) {
    std::array<uint8_t, 16> head{};
    if (!in.read(head)) return false;
    const uint32_t option = static_cast<uint32_t>(load_be(head, 8, 4));
    const uint32_t length = static_cast<uint32_t>(load_be(head, 12, 4));
    if (load_be(head, 0, 8) != kOptionMagic) {
      log_(peer_ + ": bad option magic in the handshake");
      return false;
    }
    if (length > kMaxOptionBytes) {
      log_(peer_ + ": option " + std::to_string(option) + " of " + std::to_string(length) + " bytes");
      send_option_reply(option, static_cast<uint32_t>(OptionReply::error_too_big), {});
      return false;
    }
    std::vector<uint8_t> data(length);
    if (!in.read(data)) return false;

    switch (static_cast<Option>(option)) {
      case Option::export_name: {
        // One export, whatever name the client asks for (as nbdkit serves its plugin).
        std::array<uint8_t, 10 + 124> reply{};
        store_be(reply, 0, 8, served_.size);
        store_be(reply, 8, 2, transmission);
        return send_bytes(fd_, std::span(reply).first(client_no_zeroes_ ? 10 : reply.size()));
      }
      case Option::abort:
        send_option_reply(option, static_cast<uint32_t>(OptionReply::ack), {});
        return false;
      case Option::list: {
        const std::array<uint8_t, 4> empty_name{};  // the default export, ""
        if (!send_option_reply(option, static_cast<uint32_t>(OptionReply::server), empty_name) ||
            !send_option_reply(option, static_cast<uint32_t>(OptionReply::ack), {})) {
          return false;
        }
        break;
      }
      case Option::info:
      case Option::go: {
        // u32 name length, name, u16 count of information requests, u16 each.
        const uint64_t name_bytes = length >= 4 ? load_be(data, 0, 4) : UINT64_MAX;
        const uint64_t count_at = 4 + name_bytes;
        if (count_at + 2 > length || count_at + 2 + 2 * load_be(data, count_at, 2) != length) {
          if (!send_option_reply(option, static_cast<uint32_t>(OptionReply::error_invalid), {})) return false;
          break;
        }
        bool block_size = false;
        for (uint64_t i = 0, n = load_be(data, count_at, 2); i < n; ++i) {
          block_size |= load_be(data, count_at + 2 + 2 * i, 2) == kInfoBlockSize;
        }
        std::array<uint8_t, 12> info{};
        store_be(info, 0, 2, kInfoExport);
        store_be(info, 2, 8, served_.size);
        store_be(info, 10, 2, transmission);
        std::array<uint8_t, 14> sizes{};
        store_be(sizes, 0, 2, kInfoBlockSize);
        store_be(sizes, 2, 4, 1);  // any alignment: rbd-luks merges partial sectors
        store_be(sizes, 6, 4, kPreferredBlockBytes);
        store_be(sizes, 10, 4, kMaxPayloadBytes);
        if (!send_option_reply(option, static_cast<uint32_t>(OptionReply::info), info) ||
            (block_size && !send_option_reply(option, static_cast<uint32_t>(OptionReply::info), sizes)) ||
            !send_option_reply(option, static_cast<uint32_t>(OptionReply::ack), {})) {
          return false;
        }
        if (static_cast<Option>(option) == Option::go) return true;
        break;
      }
      default:  // structured replies among them: the client falls back to simple replies
        if (!send_option_reply(option, static_cast<uint32_t>(OptionReply::error_unsupported), {})) return false;
    }
  }
}

bool Connection::next_request(Reader& in) {
  std::array<uint8_t, kRequestBytes> raw{};
  if (!in.read(raw)) return false;
  const Request request = decode_request(raw);
  if (request.magic != kRequestMagic) {
    log_(peer_ + ": bad request magic");
    return false;
  }
  const auto command = static_cast<Command>(request.type);
  if (command == Command::disconnect) return false;
  if (command == Command::write && request.length > kMaxPayloadBytes) {
    log_(peer_ + ": a write of " + std::to_string(request.length) + " bytes, more than the " +
         std::to_string(kMaxPayloadBytes) + " advertised");
    return false;
  }

  // A read longer than that fails in submit() without a buffer.
  const bool carries_data =
      command == Command::write || (command == Command::read && request.length <= kMaxPayloadBytes);
  auto pending = std::make_unique<Pending>();
  pending->request = request;
  pending->budget = carries_data ? request.length : 0;
  admit(pending->budget);
  if (carries_data) pending->data.reset(new uint8_t[request.length]);
  if (command == Command::write && !in.read({pending->data.get(), request.length})) {
    retire(pending->budget);
    return false;
  }
  submit(pending.release());
  return true;
}

void Connection::submit(Pending* pending) {
  const Request& request = pending->request;
  const auto command = static_cast<Command>(request.type);
  const bool changes = command == Command::write || command == Command::trim || command == Command::write_zeroes;
  const bool in_range = request.offset <= served_.size && request.length <= served_.size - request.offset;
  if (command != Command::read && command != Command::flush && !changes) return complete(pending, -EINVAL);
  if (changes && served_.read_only) return complete(pending, -EPERM);
  if (!in_range && command != Command::flush) {
    return complete(pending, command == Command::read || command == Command::trim ? -EINVAL : -ENOSPC);
  }
  if (command == Command::read && request.length > kMaxPayloadBytes) return complete(pending, -EINVAL);
  pending->flush_after = changes && (request.flags & kCommandFua) != 0;

  EncryptedRbdImage& image = *served_.image;
  auto done = [this, pending](ssize_t result) { complete(pending, result); };
  switch (command) {
    case Command::read:
      return image.aio_read(request.offset, {pending->data.get(), request.length}, done);
    case Command::write:
      return image.aio_write(request.offset, {pending->data.get(), request.length}, done);
    case Command::flush:
      return image.aio_flush(done);
    case Command::trim:
      return image.aio_discard(request.offset, request.length, done);
    default:  // write zeroes
      if ((request.flags & kCommandNoHole) != 0) return submit_zero_writes(pending, request.offset, request.length);
      return image.aio_write_zeroes(request.offset, request.length, done);
  }
}

// NBD_CMD_FLAG_NO_HOLE asks for zeros that are stored, not a hole: written as encrypted zeros, one
// piece after the other so that a long request holds no more than one piece of bounce buffers.
void Connection::submit_zero_writes(Pending* pending, uint64_t offset, uint64_t remaining) {
  const size_t piece = std::min<uint64_t>(remaining, kZeroPieceBytes);
  served_.image->aio_write(offset, {zero_piece(), piece}, [this, pending, offset, remaining, piece](ssize_t result) {
    if (result < 0 || remaining == piece) return complete(pending, result);
    submit_zero_writes(pending, offset + piece, remaining - piece);
  });
}

void Connection::complete(Pending* pending, long result) {
  if (result >= 0 && pending->flush_after) {
    pending->flush_after = false;
    return served_.image->aio_flush([this, pending](ssize_t flushed) { complete(pending, flushed); });
  }
  std::unique_ptr<Pending> owned(pending);
  const Request& request = owned->request;
  const uint32_t error = error_on_wire(std::min(result, 0L));
  owned->head = encode_simple_reply(request.cookie, error);
  if (static_cast<Command>(request.type) == Command::read && error == 0) {
    owned->body = {owned->data.get(), request.length};
  }
  send_reply(std::move(owned));
}

void Connection::send_reply(std::unique_ptr<Pending> pending) {
  std::vector<std::unique_ptr<Pending>> dropped;
  {
    const std::lock_guard lock(send_lock_);
    if (!send_failed_) {
      // Only when nothing is queued: replies must not interleave on the stream.
      const Sent sent = unsent_.empty() ? pending->send_rest(fd_, MSG_DONTWAIT) : Sent::would_block;
      if (sent == Sent::would_block) {
        unsent_.push_back(std::move(pending));
        queued_.notify_one();
        return;
      }
      if (sent == Sent::failed) dropped = give_up_sending();
    }
  }
  finish(std::move(pending));
  for (auto& reply : dropped) finish(std::move(reply));
}

void Connection::send_queued_replies() {
  std::unique_lock lock(send_lock_);
  for (;;) {
    queued_.wait(lock, [this] { return !unsent_.empty() || writer_stop_; });
    if (unsent_.empty()) return;
    // The front stays queued while it goes, so that no reply overtakes it on the stream.
    Pending& front = *unsent_.front();
    lock.unlock();
    const Sent sent = front.send_rest(fd_, 0);
    lock.lock();
    std::vector<std::unique_ptr<Pending>> done;
    if (sent == Sent::all) {
      done.push_back(std::move(unsent_.front()));
      unsent_.pop_front();
    } else {
      done = give_up_sending();
    }
    lock.unlock();
    for (auto& reply : done) finish(std::move(reply));
    lock.lock();
  }
}

std::vector<std::unique_ptr<Connection::Pending>> Connection::give_up_sending() {
  send_failed_ = true;
  // The client cannot hear replies any more: stop reading its requests too.
  ::shutdown(fd_, SHUT_RDWR);
  std::vector<std::unique_ptr<Pending>> dropped(std::make_move_iterator(unsent_.begin()),
                                                std::make_move_iterator(unsent_.end()));
  unsent_.clear();
  return dropped;
}

void Connection::finish(std::unique_ptr<Pending> pending) {
  const uint64_t budget = pending->budget;
  pending.reset();
  retire(budget);
}

void Connection::admit(uint64_t bytes) {
  std::unique_lock lock(flight_lock_);
  // A request larger than the whole budget still goes, alone.
  flight_changed_.wait(lock, [&] { return bytes_in_flight_ == 0 || bytes_in_flight_ + bytes <= kMaxInFlightBytes; });
  bytes_in_flight_ += bytes;
  ++requests_in_flight_;
}

void Connection::retire(uint64_t bytes) {
  const std::lock_guard lock(flight_lock_);
  bytes_in_flight_ -= bytes;
  --requests_in_flight_;
  // Last touch of this connection by a completing thread: serve() may return, and the connection
  // go, as soon as the lock is released.
  flight_changed_.notify_all();
}

}  // namespace rbdluks::nbd
