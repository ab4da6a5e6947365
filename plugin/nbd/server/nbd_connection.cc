// One client of rbd-luks's NBD server: the fixed newstyle handshake, then requests in, replies out
// (nbd_connection.h).
#include "nbd_connection.h"

#include <sys/socket.h>
#include <sys/time.h>
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
// What every request counts against the in-flight budget at least.
constexpr uint64_t kMinRequestCharge = 4096;
// Requests one connection may have in flight.
constexpr uint64_t kMaxRequests = 1024;
// Seconds a client has for the handshake.
constexpr time_t kHandshakeSeconds = 30;

// A request that reaches past the end of the image: reads and trims are invalid there, changes find
// no space.
long past_the_end(Command command) { return command == Command::read || command == Command::trim ? -EINVAL : -ENOSPC; }

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
  // A small buffer for the handshake; grow() makes it the large one of the transmission phase.
  explicit Reader(int fd) : fd_(fd), buffer_(4 << 10) {}
  void grow() { buffer_.resize(256 << 10); }

  // Reads and drops n bytes (an option too long to keep).
  bool skip(uint64_t n) {
    std::array<uint8_t, 4096> scratch{};
    for (; n > 0; n -= std::min<uint64_t>(n, scratch.size())) {
      if (!read(std::span(scratch).first(std::min<uint64_t>(n, scratch.size())))) return false;
    }
    return true;
  }

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
  // One read(2), again after a signal: the bytes read, 0 at end of stream, -1 on an error.
  ssize_t read_some(std::span<uint8_t> out) {
    ssize_t n;
    do {
      n = ::read(fd_, out.data(), out.size());
    } while (n < 0 && errno == EINTR);
    return n;
  }

  bool fill() {
    const ssize_t n = read_some(buffer_);
    if (n <= 0) return false;
    begin_ = 0;
    end_ = static_cast<size_t>(n);
    return true;
  }

  bool read_direct(std::span<uint8_t> out) {
    while (!out.empty()) {
      const ssize_t n = read_some(out);
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
  // The reply: its header, the payload that follows it, and how much of both has gone.
  ReplyHead head;
  std::span<const uint8_t> body;
  size_t sent = 0;

  // Sends what is left of the reply; with MSG_DONTWAIT, stops where the socket would block.
  Sent send_rest(int fd, int flags);
};

Sent Connection::Pending::send_rest(int fd, int flags) {
  std::array<iovec, 2> parts{};
  size_t count = 0;
  if (sent < head.size) parts[count++] = {head.bytes.data() + sent, head.size - sent};
  const size_t body_done = sent > head.size ? sent - head.size : 0;
  if (body_done < body.size()) {
    parts[count++] = {const_cast<uint8_t*>(body.data()) + body_done, body.size() - body_done};
  }
  return send_parts(fd, std::span(parts).first(count), flags, sent);
}

Connection::Connection(int fd, std::string peer, const Export& served, Log log)
    : fd_(fd), peer_(std::move(peer)), served_(served), log_(std::move(log)) {}

Connection::~Connection() { ::close(fd_); }

void Connection::stop() {
  closing_ = true;
  // Wakes the reading thread if it waits for the client.
  ::shutdown(fd_, SHUT_RD);
}

void Connection::abort() { ::shutdown(fd_, SHUT_RDWR); }

void Connection::serve() {
  Reader in(fd_);
  // A client that connects and says nothing holds no thread for long.
  const timeval handshake_time{kHandshakeSeconds, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &handshake_time, sizeof(handshake_time));
  if (!handshake(in)) return;
  const timeval no_limit{0, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &no_limit, sizeof(no_limit));
  std::thread writer;
  try {
    in.grow();
    writer = std::thread([this] { send_queued_replies(); });
  } catch (const std::exception& e) {  // out of memory or threads: nothing was submitted yet
    log_(peer_ + ": " + e.what());
    return;
  }
  try {
    while (next_request(in)) {
    }
  } catch (const std::bad_alloc&) {  // next_request() left no request half admitted
    log_(peer_ + ": out of memory; the connection ends");
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
    if (closing_ || !in.read(head)) return false;
    const uint32_t option = static_cast<uint32_t>(load_be(head, 8, 4));
    const uint32_t length = static_cast<uint32_t>(load_be(head, 12, 4));
    if (load_be(head, 0, 8) != kOptionMagic) {
      log_(peer_ + ": bad option magic in the handshake");
      return false;
    }
    if (length > kMaxOptionBytes) {
      // EXPORT_NAME has no error reply: the only answer is to hang up.
      if (static_cast<Option>(option) == Option::export_name || !in.skip(length)) return false;
      if (!send_option_reply(option, static_cast<uint32_t>(OptionReply::error_too_big), {})) return false;
      continue;
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
        if (length != 0) {
          if (!send_option_reply(option, static_cast<uint32_t>(OptionReply::error_invalid), {})) return false;
          break;
        }
        if (!send_option_reply(option, static_cast<uint32_t>(OptionReply::server), empty_name) ||
            !send_option_reply(option, static_cast<uint32_t>(OptionReply::ack), {})) {
          return false;
        }
        break;
      }
      case Option::info:
      case Option::go: {
        // u32 name length, name, u16 count of information requests, u16 each.
        const uint64_t count_at = length >= 4 ? 4 + load_be(data, 0, 4) : 0;
        if (length < 6 || count_at + 2 > length || count_at + 2 + 2 * load_be(data, count_at, 2) != length) {
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
      case Option::structured_reply: {
        const auto answer = length == 0 ? OptionReply::ack : OptionReply::error_invalid;
        structured_ |= length == 0;
        if (!send_option_reply(option, static_cast<uint32_t>(answer), {})) return false;
        break;
      }
      case Option::list_meta_context:
      case Option::set_meta_context:
        if (!answer_meta_context(option, data)) return false;
        break;
      default:
        if (!send_option_reply(option, static_cast<uint32_t>(OptionReply::error_unsupported), {})) return false;
    }
  }
}

bool Connection::answer_meta_context(uint32_t option, std::span<const uint8_t> data) {
  const bool set = static_cast<Option>(option) == Option::set_meta_context;
  // u32 export name length, name, u32 count of queries, each a u32 length and the query.
  std::vector<std::string> queries;
  bool valid = data.size() >= 4;
  uint64_t at = valid ? 4 + load_be(data, 0, 4) : 0;
  valid = valid && at + 4 <= data.size();
  const uint64_t count = valid ? load_be(data, at, 4) : 0;
  at += 4;
  for (uint64_t i = 0; valid && i < count; ++i) {
    valid = at + 4 <= data.size() && at + 4 + load_be(data, at, 4) <= data.size();
    if (!valid) break;
    const uint64_t bytes = load_be(data, at, 4);
    queries.emplace_back(reinterpret_cast<const char*>(data.data()) + at + 4, bytes);
    at += 4 + bytes;
  }
  // Choosing a context only makes sense once replies can carry its answers.
  if (!valid || at != data.size() || (set && !structured_)) {
    return send_option_reply(option, static_cast<uint32_t>(OptionReply::error_invalid), {});
  }
  // A list with no query lists every context; "base:" names every context of its namespace.
  bool matched = false;
  for (const std::string& query : queries) {
    matched |= query == kAllocationContext || (!set && query == "base:");
  }
  if (!set && queries.empty()) matched = true;
  if (set) allocation_context_ = matched;
  if (matched) {
    const std::string name = kAllocationContext;
    std::vector<uint8_t> reply(4 + name.size());
    store_be(reply, 0, 4, set ? kAllocationContextId : 0);
    std::copy(name.begin(), name.end(), reply.begin() + 4);
    if (!send_option_reply(option, static_cast<uint32_t>(OptionReply::meta_context), reply)) return false;
  }
  return send_option_reply(option, static_cast<uint32_t>(OptionReply::ack), {});
}

bool Connection::next_request(Reader& in) {
  std::array<uint8_t, kRequestBytes> raw{};
  if (closing_ || !in.read(raw)) return false;
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
  const bool zero_writes = command == Command::write_zeroes && (request.flags & kCommandNoHole) != 0;
  // What the request holds while in flight: its data, or the ciphertext of one piece of zeros, and
  // at least a small amount for its bookkeeping, so that a flood of tiny requests is bounded too.
  uint64_t charge = carries_data ? request.length : 0;
  if (zero_writes) charge = std::min<uint64_t>(request.length, kZeroPieceBytes);
  charge = std::max(charge, kMinRequestCharge);
  admit(charge);
  std::unique_ptr<Pending> pending;
  try {
    pending = std::make_unique<Pending>();
    if (carries_data) pending->data.reset(new uint8_t[request.length]);
  } catch (const std::bad_alloc&) {
    retire(charge);
    throw;
  }
  pending->request = request;
  pending->budget = charge;
  if (command == Command::write && !in.read({pending->data.get(), request.length})) {
    retire(charge);
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
  if (command == Command::block_status) {
    const bool flags_ok = (request.flags & ~(kCommandFua | kCommandReqOne)) == 0;
    if (!allocation_context_ || !in_range || request.length == 0 || !flags_ok) return complete(pending, -EINVAL);
    long described = -ENOMEM;
    try {  // the request is counted in flight: it must be answered, also without memory
      described = describe_allocation(*pending);
    } catch (const std::bad_alloc&) {
    }
    return complete(pending, described);
  }
  if (command != Command::read && command != Command::flush && !changes) return complete(pending, -EINVAL);
  // Flags a command does not take (or that were not advertised, such as DF and FAST_ZERO).
  const uint16_t allowed = kCommandFua | (command == Command::write_zeroes ? kCommandNoHole : 0);
  if ((request.flags & ~allowed) != 0) return complete(pending, -EINVAL);
  if (changes && served_.read_only) return complete(pending, -EPERM);
  if (!in_range && command != Command::flush) return complete(pending, past_the_end(command));
  if (command == Command::read && request.length > kMaxPayloadBytes) return complete(pending, -EINVAL);
  pending->flush_after = changes && (request.flags & kCommandFua) != 0;

  EncryptedRbdImage& image = *served_.image;
  auto done = [this, pending](ssize_t result) { complete(pending, result); };
  try {  // the image queues nothing, and calls nothing back, when it runs out of memory
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
  } catch (const std::bad_alloc&) {
    complete(pending, -ENOMEM);
  }
}

// NBD_CMD_FLAG_NO_HOLE asks for zeros that are stored, not a hole: written as encrypted zeros, one
// piece after the other so that a long request holds no more than one piece of bounce buffers.
void Connection::submit_zero_writes(Pending* pending, uint64_t offset, uint64_t remaining) {
  const size_t piece = std::min<uint64_t>(remaining, kZeroPieceBytes);
  served_.image->aio_write(offset, {zero_piece(), piece}, [this, pending, offset, remaining, piece](ssize_t result) {
    if (result >= 0 && static_cast<uint64_t>(result) != piece) result = past_the_end(Command::write_zeroes);
    if (result < 0) return complete(pending, result);
    if (remaining == piece) return complete(pending, pending->request.length);
    try {
      submit_zero_writes(pending, offset + piece, remaining - piece);
    } catch (const std::bad_alloc&) {
      complete(pending, -ENOMEM);
    }
  });
}

long Connection::describe_allocation(Pending& pending) {
  const Request& request = pending.request;
  auto extents = served_.image->allocated_extents(request.offset, request.length);
  if (!extents) return -EIO;
  // Data where the map has it, holes that read as zeros between; the last descriptor ends at the
  // end of the request. With NBD_CMD_FLAG_REQ_ONE the first descriptor is enough.
  std::vector<std::pair<uint64_t, uint32_t>> descriptors;
  uint64_t at = request.offset;
  const uint64_t end = request.offset + request.length;
  auto add = [&](uint64_t until, uint32_t state) {
    if (until > at) descriptors.emplace_back(until - at, state);
    at = until;
  };
  for (const Extent& extent : *extents) {
    add(extent.offset, kStateHole | kStateZero);
    add(extent.offset + extent.length, 0);
  }
  add(end, kStateHole | kStateZero);
  if ((request.flags & kCommandReqOne) != 0) descriptors.resize(1);
  const size_t bytes = 8 * descriptors.size();
  pending.data.reset(new uint8_t[bytes]);
  const std::span<uint8_t> out(pending.data.get(), bytes);
  for (size_t i = 0; i < descriptors.size(); ++i) {
    store_be(out, 8 * i, 4, descriptors[i].first);
    store_be(out, 8 * i + 4, 4, descriptors[i].second);
  }
  pending.body = out;
  return 0;
}

void Connection::complete(Pending* pending, long result) {
  const Request& request = pending->request;
  const auto command = static_cast<Command>(request.type);
  const bool moves_bytes = command == Command::read || command == Command::write || command == Command::trim ||
                           command == Command::write_zeroes;
  // The image cuts a request short at its end: it shrank (another client resized it) since this
  // server told the client its size. A short success must not pass for a whole one.
  if (result >= 0 && moves_bytes && static_cast<uint64_t>(result) != request.length) result = past_the_end(command);
  if (result >= 0 && pending->flush_after) {
    try {
      return served_.image->aio_flush([this, pending](ssize_t flushed) { answer(pending, flushed); });
    } catch (const std::bad_alloc&) {
      result = -ENOMEM;
    }
  }
  answer(pending, result);
}

void Connection::answer(Pending* pending, long result) {
  std::unique_ptr<Pending> owned(pending);
  const Request& request = owned->request;
  const uint32_t error = error_on_wire(std::min(result, 0L));
  const auto command = static_cast<Command>(request.type);
  if (error != 0) {
    owned->body = {};
  } else if (command == Command::read) {
    owned->body = {owned->data.get(), request.length};
  }
  owned->head = structured_ ? structured_reply(request.cookie, error, command, request.offset,
                                               static_cast<uint32_t>(owned->body.size()))
                            : simple_reply(request.cookie, error);
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
  closing_ = true;  // requests read from now on could not be answered
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
  flight_changed_.wait(lock, [&] {
    return bytes_in_flight_ == 0 ||
           (bytes_in_flight_ + bytes <= kMaxInFlightBytes && requests_in_flight_ < kMaxRequests);
  });
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
