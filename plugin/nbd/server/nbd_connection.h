// One client of rbd-luks's NBD server, from the handshake to the disconnect.
//
// Requests are read on the connection's own thread and handed to the image without waiting; each
// reply is sent by the thread that completes its request (librbd's completion thread, or one of
// rbd-luks's crypto workers), under the connection's send lock. A request therefore costs no thread
// hand-off beyond librbd's own, which is what makes this server faster than an nbdkit plugin, whose
// worker threads each block on one request at a time (docs/performance.md, "Unmodified clients").
// Replies may leave in another order than their requests came, as the protocol allows.
//
// Those threads serve every connection and librbd itself, so they never wait for a client: a reply
// the socket cannot take at once is queued, and the connection's writer thread sends it when the
// client reads. A queued reply still counts against the in-flight budget, so a client that stops
// reading stops being read from, and holds at most that much memory.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "encrypted_rbd_image.h"

namespace rbdluks::nbd {

// What every connection serves.
struct Export {
  EncryptedRbdImage* image = nullptr;  // outlives every connection
  uint64_t size = 0;                   // plaintext bytes, as at the server's start
  bool read_only = false;
};

// Requests carry at most this many bytes of data (advertised as NBD_INFO_BLOCK_SIZE's maximum, as
// qemu-nbd and nbdkit do); longer reads fail with EINVAL, and a longer write ends the connection,
// since its payload cannot be skipped safely.
constexpr uint32_t kMaxPayloadBytes = uint32_t{32} << 20;
// The data of the requests in flight on one connection (each counted as at least 4 KiB, and at most
// 1024 requests): past this, no more requests are read from the socket until replies have gone, so
// a client cannot make the server hold unbounded memory. The image holds about as much again in
// ciphertext while they are in flight.
constexpr uint64_t kMaxInFlightBytes = uint64_t{64} << 20;

// One line about a client that misbehaved or went away unexpectedly.
using Log = std::function<void(const std::string& line)>;

class Connection {
 public:
  // Takes fd, a connected stream socket; `peer` names the client in log lines.
  Connection(int fd, std::string peer, const Export& served, Log log);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Serves the client until it disconnects, the socket fails, or stop(); returns only once every
  // request it submitted has been answered (or could not be, the socket having failed).
  void serve();
  // From any thread: no more requests are read; those in flight are still answered.
  void stop();
  // From any thread, for a client that does not take its replies after stop(): the socket is shut
  // both ways, so serve() returns once the image has answered (the replies are dropped).
  void abort();

 private:
  struct Pending;
  class Reader;

  bool handshake(Reader& in);
  bool send_option_reply(uint32_t option, uint32_t type, std::span<const uint8_t> data);
  // NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT; false when the connection is over.
  bool answer_meta_context(uint32_t option, std::span<const uint8_t> data);
  // NBD_CMD_BLOCK_STATUS, answered at once from the image's allocation map: the descriptors become
  // the reply's payload. A negative errno on failure.
  long describe_allocation(Pending& pending);
  // Reads and submits one request; false when the connection is over.
  bool next_request(Reader& in);
  void submit(Pending* pending);
  void submit_zero_writes(Pending* pending, uint64_t offset, uint64_t remaining);
  // The image's answer to a request: a FUA request first flushes, then the reply goes.
  void complete(Pending* pending, long result);
  // Builds the reply to a request the image has answered with result, and sends it.
  void answer(Pending* pending, long result);
  // Sends the reply now if the socket takes all of it without waiting, else queues it.
  void send_reply(std::unique_ptr<Pending> pending);
  // The writer thread: sends queued replies in order until told to stop.
  void send_queued_replies();
  // After a send failed: no more replies; the queued ones are dropped. Under send_lock_.
  std::vector<std::unique_ptr<Pending>> give_up_sending();
  void finish(std::unique_ptr<Pending> pending);
  // Waits until `bytes` more fit in the in-flight budget, then counts the request as in flight.
  void admit(uint64_t bytes);
  void retire(uint64_t bytes);

  const int fd_;
  const std::string peer_;
  const Export served_;
  const Log log_;
  bool client_no_zeroes_ = false;
  bool structured_ = false;          // NBD_OPT_STRUCTURED_REPLY was agreed
  bool allocation_context_ = false;  // "base:allocation" was selected

  std::mutex send_lock_;
  std::condition_variable queued_;
  std::deque<std::unique_ptr<Pending>> unsent_;  // replies the socket did not take at once, in order
  bool send_failed_ = false;                     // under send_lock_
  bool writer_stop_ = false;                     // under send_lock_
  std::atomic<bool> closing_{false};             // stop(), or replies cannot go: read no more requests

  std::mutex flight_lock_;
  std::condition_variable flight_changed_;
  uint64_t requests_in_flight_ = 0;  // under flight_lock_
  uint64_t bytes_in_flight_ = 0;     // under flight_lock_
};

}  // namespace rbdluks::nbd
