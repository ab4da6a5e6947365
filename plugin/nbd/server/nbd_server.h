// rbd-luks's NBD server: one export, the plaintext of an encrypted RBD image, served on a unix socket
// or a TCP address to any number of clients at once (NBD multi-conn: all share one image, so a flush
// on one connection covers the writes of all). Each client gets a thread that reads its requests;
// the replies go out from the threads that complete them (nbd_connection.h).
#pragma once

#include <sys/stat.h>

#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "nbd_connection.h"
#include "result.h"

namespace rbdluks::nbd {

// Where to listen: a unix socket path, or a TCP host and port.
struct ListenAddress {
  std::string unix_path;
  std::string host;
  std::string port;
  std::string describe() const;  // "unix:PATH" or "tcp:HOST:PORT"
};

class Server {
 public:
  // Binds and listens. A unix socket left behind by a server that is gone is replaced; one that a
  // server still answers on, or a path that is not a socket, is an error.
  static Result<std::unique_ptr<Server>> listen(const ListenAddress& address, const Export& served, Log log);
  ~Server();  // closes the listening socket and removes a unix socket's path
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Accepts and serves clients until stop_fd becomes readable (a signal handler writes to it); then
  // stops listening, reads no more requests, and returns once every request in flight has been
  // answered. A failure when clients had to be disconnected before they took their replies.
  Status run(int stop_fd);

 private:
  Server(int listen_fd, ListenAddress address, const struct stat& socket_file, const Export& served, Log log);
  void serve_client(int fd, const std::string& peer);
  // Closes the listening socket and removes a unix socket's file, if it is still ours.
  void stop_listening();

  int listen_fd_;
  const ListenAddress address_;
  const dev_t socket_device_;  // a unix socket's file, as bound
  const ino_t socket_inode_;
  const Export served_;
  const Log log_;

  std::mutex clients_lock_;
  std::list<Connection*> clients_;  // under clients_lock_
  size_t serving_ = 0;              // client threads still running, under clients_lock_
  bool stopping_ = false;           // under clients_lock_
  std::condition_variable all_done_;
};

}  // namespace rbdluks::nbd
