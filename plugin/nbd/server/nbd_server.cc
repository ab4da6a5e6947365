// rbd-luks's NBD server: the listening socket and the clients' threads (nbd_server.h).
#include "nbd_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <thread>

namespace rbdluks::nbd {
namespace {

// How long a stop waits for clients to take the replies to their last requests.
constexpr std::chrono::seconds kStopGrace{30};
// Clients served at once; each holds a thread or two and up to kMaxInFlightBytes of requests.
constexpr size_t kMaxClients = 16;

std::string errno_text() { return std::generic_category().message(errno); }

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return Error(Errc::usage, "socket path '" + path + "' is empty or longer than " +
                                  std::to_string(sizeof(address.sun_path) - 1) + " bytes");
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

// A socket file at path is replaced only when nothing answers on it any more.
Status clear_stale_socket(const std::string& path, const sockaddr_un& address) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return errno == ENOENT ? Status{} : errno_error(path);
  if (!S_ISSOCK(st.st_mode)) return Error(Errc::failure, path + " exists and is not a socket");
  const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return errno_error("socket");
  const bool answered = connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  ::close(probe);
  if (answered) return Error(Errc::failure, "a server already listens on " + path);
  if (unlink(path.c_str()) != 0) return errno_error("remove stale socket " + path);
  return {};
}

Result<int> listen_unix(const std::string& path) {
  RL_ASSIGN(const sockaddr_un address, unix_address(path));
  RL_TRY(clear_stale_socket(path, address));
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_error("socket");
  // Whoever can connect reads the plaintext: the socket is its owner's alone until an operator
  // chooses otherwise (chmod, chgrp). Linux gives the socket file the mode of the socket's inode
  // (less the umask), so this needs no process-wide umask change while other threads run.
  if (fchmod(fd, 0600) != 0 || bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 ||
      ::listen(fd, SOMAXCONN) != 0) {
    auto error = errno_error("listen on " + path);
    ::close(fd);
    return error;
  }
  return fd;
}

Result<int> listen_tcp(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (const int r = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); r != 0) {
    return Error(Errc::usage, "address " + host + " port " + port + ": " + gai_strerror(r));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);
  std::string failure = "no address";
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) return fd;
    failure = errno_text();
    ::close(fd);
  }
  return Error(Errc::failure, "listen on " + host + ":" + port + ": " + failure);
}

std::string peer_of(const sockaddr_storage& peer, uint64_t number) {
  std::string name = "client " + std::to_string(number);
  char host[NI_MAXHOST], port[NI_MAXSERV];
  if (peer.ss_family != AF_UNIX &&
      getnameinfo(reinterpret_cast<const sockaddr*>(&peer), sizeof(peer), host, sizeof(host), port, sizeof(port),
                  NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    name += std::string(" (") + host + ":" + port + ")";
  }
  return name;
}

}  // namespace

std::string ListenAddress::describe() const {
  return unix_path.empty() ? "tcp:" + host + ":" + port : "unix:" + unix_path;
}

Result<std::unique_ptr<Server>> Server::listen(const ListenAddress& address, const Export& served, Log log) {
  RL_ASSIGN(const int fd,
            address.unix_path.empty() ? listen_tcp(address.host, address.port) : listen_unix(address.unix_path));
  struct stat st {};
  if (!address.unix_path.empty() && stat(address.unix_path.c_str(), &st) != 0) {
    auto error = errno_error(address.unix_path);
    ::close(fd);
    return error;
  }
  return std::unique_ptr<Server>(new Server(fd, address, st, served, std::move(log)));
}

Server::Server(int listen_fd, ListenAddress address, const struct stat& socket_file, const Export& served, Log log)
    : listen_fd_(listen_fd),
      address_(std::move(address)),
      socket_device_(socket_file.st_dev),
      socket_inode_(socket_file.st_ino),
      served_(served),
      log_(std::move(log)) {}

Server::~Server() { stop_listening(); }

void Server::stop_listening() {
  if (listen_fd_ < 0) return;
  ::close(listen_fd_);
  listen_fd_ = -1;
  // Only our own socket file: another server may have been started on the path after it was
  // removed by hand.
  struct stat st {};
  if (!address_.unix_path.empty() && stat(address_.unix_path.c_str(), &st) == 0 && st.st_dev == socket_device_ &&
      st.st_ino == socket_inode_) {
    unlink(address_.unix_path.c_str());
  }
}

Status Server::run(int stop_fd) {
  Status result;
  for (uint64_t accepted = 1;; ++accepted) {
    std::array<pollfd, 2> wait{pollfd{listen_fd_, POLLIN, 0}, pollfd{stop_fd, POLLIN, 0}};
    if (poll(wait.data(), wait.size(), -1) < 0) {
      if (errno == EINTR) continue;
      result = errno_error("poll");
      break;
    }
    if (wait[1].revents != 0) break;
    sockaddr_storage peer{};
    socklen_t peer_bytes = sizeof(peer);
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &peer_bytes, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;  // the client gave up before we took it
      // Out of descriptors or memory: the client waits in the backlog; try again a little later
      // rather than spin on it.
      log_("accept: " + errno_text());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    if (peer.ss_family != AF_UNIX) {
      // Replies are sent whole, each in one call: Nagle's delay would only hold them back.
      const int on = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    }
    const std::string name = peer_of(peer, accepted);
    std::unique_lock lock(clients_lock_);
    if (serving_ >= kMaxClients) {
      lock.unlock();
      log_(name + ": refused, " + std::to_string(kMaxClients) + " clients are connected");
      ::close(fd);
      continue;
    }
    ++serving_;
    lock.unlock();
    try {
      std::thread([this, fd, name] { serve_client(fd, name); }).detach();
    } catch (const std::system_error& e) {
      log_(name + ": refused, no thread to serve it: " + e.what());
      ::close(fd);
      lock.lock();
      --serving_;
    }
  }

  // New clients are turned away at once, and a server started on the same path meanwhile finds it
  // free.
  stop_listening();
  std::unique_lock lock(clients_lock_);
  stopping_ = true;
  for (Connection* client : clients_) client->stop();
  // A client that takes its replies is done as soon as the image has answered; one that does not
  // read would hold the stop up for good.
  if (!all_done_.wait_for(lock, kStopGrace, [this] { return serving_ == 0; })) {
    const size_t stalled = clients_.size();
    for (Connection* client : clients_) client->abort();
    all_done_.wait(lock, [this] { return serving_ == 0; });
    if (result) {
      result = Error(Errc::failure, std::to_string(stalled) + " client(s) did not take their replies within " +
                                        std::to_string(kStopGrace.count()) + " s of the stop and were disconnected");
    }
  }
  return result;
}

void Server::serve_client(int fd, const std::string& peer) {
  Connection connection(fd, peer, served_, log_);
  std::list<Connection*>::iterator registered;
  bool serve = false;
  {
    const std::lock_guard lock(clients_lock_);
    if (!stopping_) {
      registered = clients_.insert(clients_.end(), &connection);
      serve = true;
    }
  }
  if (serve) connection.serve();
  const std::lock_guard lock(clients_lock_);
  if (serve) clients_.erase(registered);
  --serving_;
  // The last touch of the server by this thread: run() may return once the lock is released.
  all_done_.notify_all();
}

}  // namespace rbdluks::nbd
