// `rbd-luks nbd-server TARGET (--socket PATH | --port PORT [--address HOST]) [--read-only]
// [--pidfile FILE] [key source]`: serves the plaintext of an encrypted RBD image to NBD clients
// (nbd-client, qemu-nbd -c, qemu-img, nbdcopy, fio's nbd engine) until SIGINT or SIGTERM; then it
// answers the requests in flight, flushes and closes the image, and exits 0 unless that failed.
// The key is checked before anything listens, so a wrong key never yields a socket that serves
// garbage.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>

#include "commands.h"
#include "encrypted_rbd_image.h"
#include "key_source.h"
#include "nbd_server.h"
#include "target.h"

namespace rbdluks::cli {
namespace {

constexpr const char* kSynopsis =
    "nbd-server TARGET (--socket PATH | --port PORT [--address HOST]) [--read-only] [--pidfile FILE]";

int stop_pipe_write_end = -1;

extern "C" void request_stop(int) {
  const int saved_errno = errno;
  const char byte = 0;
  [[maybe_unused]] const ssize_t written = write(stop_pipe_write_end, &byte, 1);
  errno = saved_errno;
}

// A pipe that SIGINT and SIGTERM write to, so the server stops at its next poll. Only the first
// signal is caught: a second one ends the process at once, for a stop that waits on a cluster
// that does not answer.
Result<int> stop_on_signals() {
  int ends[2];
  if (pipe2(ends, O_CLOEXEC | O_NONBLOCK) != 0) return Error(Errc::failure, "pipe for signals failed");
  stop_pipe_write_end = ends[1];
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  return ends[0];
}

// Written once the server listens: whoever waits for the file may connect. Never through a link.
Status write_pid_file(const std::string& path) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  const std::string text = std::to_string(getpid()) + "\n";
  const bool written = fd >= 0 && write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (fd >= 0) close(fd);
  if (!written) return Error(Errc::failure, "cannot write pid file " + path);
  return {};
}

Result<nbd::ListenAddress> listen_address(const CommandLine& cl) {
  nbd::ListenAddress address;
  address.unix_path = cl.get("socket").value_or("");
  address.port = cl.get("port").value_or("");
  address.host = cl.get("address").value_or("127.0.0.1");
  if (address.unix_path.empty() == address.port.empty()) {
    return Error(Errc::usage, std::string(kSynopsis) + ": give either --socket or --port");
  }
  if (!address.unix_path.empty() && cl.has("address")) {
    return Error(Errc::usage, "--address goes with --port, not with --socket");
  }
  return address;
}

}  // namespace

Status cmd_nbd_server(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, kSynopsis));
  RL_ASSIGN(const nbd::ListenAddress address, listen_address(cl));
  RL_ASSIGN(const Target target, parse_target(args[0]));
  const OpenMode mode = cl.has("read-only") ? OpenMode::read_only : OpenMode::read_write;
  RL_ASSIGN(auto raw, open_rbd_target(cl, target, mode, "nbd-server"));
  std::unique_ptr<EncryptedRbdImage> image;
  {
    RL_ASSIGN(const SecureBuffer passphrase, passphrase_for(cl, *raw));
    // The reading thread reads the next requests while workers encrypt a large write.
    DispatchOptions options;
    options.encrypt_on_submitting_thread = false;
    RL_ASSIGN(image, EncryptedRbdImage::open(std::move(raw), passphrase.span(), options));
  }
  RL_ASSIGN(const uint64_t size, image->size());
  const nbd::Export served{image.get(), size, image->read_only()};

  RL_ASSIGN(const int stop_fd, stop_on_signals());
  RL_ASSIGN(auto server, nbd::Server::listen(address, served, [](const std::string& line) {
              std::fprintf(stderr, "rbd-luks: nbd-server: %s\n", line.c_str());
            }));
  const auto pidfile = cl.get("pidfile");
  if (pidfile) RL_TRY(write_pid_file(*pidfile));
  if (!address.port.empty()) {
    std::fprintf(stderr,
                 "rbd-luks: warning: NBD over TCP has neither access control nor encryption: whoever "
                 "reaches %s reads and writes the plaintext\n",
                 address.describe().c_str());
  }
  inform(cl, "serving " + args[0] + " (" + std::to_string(size) + " bytes" + (served.read_only ? ", read-only" : "") +
                 ") on " + address.describe());
  const Status served_until_stop = server->run(stop_fd);
  server.reset();
  const Status closed = image->close();
  if (pidfile) unlink(pidfile->c_str());
  if (!served_until_stop && !closed) {
    return Error(Errc::failure,
                 served_until_stop.error().message() + "; and closing the image: " + closed.error().message());
  }
  RL_TRY(served_until_stop);
  RL_TRY(closed);
  inform(cl, "stopped; every request was answered and " + args[0] + " is flushed and closed");
  return {};
}

}  // namespace rbdluks::cli
