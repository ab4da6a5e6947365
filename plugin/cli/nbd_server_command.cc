// `rbd-luks nbd-server TARGET (--socket PATH | --port PORT [--address HOST]) [--read-only]
// [--pidfile FILE] [--reencrypt [reencrypt options]] [key source]`: serves the plaintext of an
// encrypted RBD image to NBD clients (nbd-client, qemu-nbd -c, qemu-img, nbdcopy, fio's nbd
// engine) until SIGINT or SIGTERM; then it answers the requests in flight, flushes and closes the
// image, and exits 0 unless that failed. The key is checked before anything listens, so a wrong key
// never yields a socket that serves garbage. With --reencrypt, the volume key is replaced while the
// clients go on (EncryptedRbdImage::reencrypt); a stop or failure of that run ends in a nonzero exit.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <optional>
#include <thread>

#include "commands.h"
#include "encrypted_rbd_image.h"
#include "key_source.h"
#include "nbd_server.h"
#include "reencrypt_options.h"
#include "reencrypt_request_follower.h"
#include "target.h"

namespace rbdluks::cli {
namespace {

constexpr const char* kSynopsis =
    "nbd-server TARGET (--socket PATH | --port PORT [--address HOST]) [--read-only] [--pidfile FILE] "
    "[--reencrypt [--keyslot-passphrase-file F]... [--cipher C] [--key-size BITS] [--hotzone-size S] [--force]]";

void log_line(const std::string& line) { std::fprintf(stderr, "rbd-luks: nbd-server: %s\n", line.c_str()); }

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

// The online reencryption of --reencrypt, on its own thread while the server serves. passphrases[0]
// is the one the image was opened with.
class ServedReencryption {
 public:
  ServedReencryption(const CommandLine& cl, const Target& target) : cl_(cl), target_(target) {}

  // Before the image opens: a usage error comes before anything listens.
  Status prepare() {
    if (cl_.has("read-only"))
      return Error(Errc::usage, "--reencrypt rewrites the image; it cannot go with --read-only");
    if (cl_.has("sector-size")) {
      return Error(Errc::usage, "--reencrypt keeps the sector size; change it with `rbd-luks reencrypt` instead");
    }
    RL_ASSIGN(options_, reencrypt_options_from(cl_, target_, false));
    if (!cl_.has("hotzone-size")) options_.hotzone_bytes = 0;  // the online default
    RL_ASSIGN(passphrases_, keyslot_passphrase_files(cl_));
    options_.stop_requested = [this] { return stopping_.load(); };
    // No bar: a server's stderr is a log. A line per tenth instead.
    options_.progress = [this](uint64_t done, uint64_t total) {
      done_ = done;
      total_ = total;
      const uint64_t tenth = total == 0 ? 10 : done * 10 / total;
      if (tenth <= logged_tenth_ || tenth >= 10) return;
      logged_tenth_ = tenth;
      log_line("reencrypted " + std::to_string(tenth * 10) + "% (" + std::to_string(done) + " of " +
               std::to_string(total) + " bytes)");
    };
    return {};
  }

  void start(EncryptedRbdImage& image, SecureBuffer passphrase) {
    passphrases_.insert(passphrases_.begin(), std::move(passphrase));
    thread_ = std::thread([this, &image] { result_ = run(image); });
  }

  // Stops the run after its step at hand (resumable), and returns how it ended.
  Status stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
    return result_;
  }

 private:
  Status run(EncryptedRbdImage& image) {
    std::vector<std::span<const uint8_t>> spans;
    for (const auto& secret : passphrases_) spans.push_back(secret.span());
    log_line("reencrypting " + spec_ + " under a new volume key while serving it");
    auto report = image.reencrypt(spans, options_);
    if (!report) {
      const Error& error = report.error();
      const std::string finish =
          "`rbd-luks reencrypt " + spec_ + "` finishes it, and no client opens the image until then";
      const std::string done = std::to_string(done_) + " of " + std::to_string(total_) + " bytes done";
      if (!image.reencryption_unfinished()) {
        log_line("the reencryption failed, and the header records no unfinished run: " + error.message());
        return Error(error.code(), "the reencryption while serving failed, and the header records no unfinished run: " +
                                       error.message());
      }
      if (stopping_ && error.is(Errc::failure)) {
        return Error(Errc::failure,
                     "the server stopped before the reencryption of " + spec_ + " finished (" + done + "); " + finish);
      }
      log_line("the reencryption failed (" + done + "): " + error.message());
      return Error(error.code(),
                   "the reencryption while serving failed (" + done + "): " + error.message() + "; " + finish);
    }
    log_line("reencrypted " + spec_ + " while serving it: " + std::to_string(report->bytes_written) + " of " +
             std::to_string(report->data_bytes) + " data bytes rewritten under a new volume key");
    return {};
  }

  const CommandLine& cl_;
  const Target& target_;
  const std::string& spec_ = target_.spec;
  ReencryptOptions options_;
  std::vector<SecureBuffer> passphrases_;
  std::atomic<bool> stopping_{false};
  uint64_t logged_tenth_ = 0;
  uint64_t done_ = 0;  // as the progress last said
  uint64_t total_ = 0;
  std::thread thread_;
  Status result_;
};

}  // namespace

Status cmd_nbd_server(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, kSynopsis));
  RL_ASSIGN(const nbd::ListenAddress address, listen_address(cl));
  RL_ASSIGN(const Target target, parse_target(args[0]));
  std::optional<ServedReencryption> reencryption;
  if (cl.has("reencrypt")) RL_TRY(reencryption.emplace(cl, target).prepare());
  const OpenMode mode = cl.has("read-only") ? OpenMode::read_only : OpenMode::read_write;
  RL_ASSIGN(auto raw, open_rbd_target(cl, target, mode, "nbd-server"));
  std::unique_ptr<EncryptedRbdImage> image;
  RL_ASSIGN(SecureBuffer passphrase, passphrase_for(cl, *raw));
  {
    // The reading thread reads the next requests while workers encrypt a large write.
    DispatchOptions options;
    options.encrypt_on_submitting_thread = false;
    RL_ASSIGN(image, EncryptedRbdImage::open(std::move(raw), passphrase.span(), options));
  }
  RL_ASSIGN(const uint64_t size, image->size());
  const nbd::Export served{image.get(), size, image->read_only()};

  RL_ASSIGN(const int stop_fd, stop_on_signals());
  RL_ASSIGN(auto server, nbd::Server::listen(address, served, log_line));
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
  std::optional<ReencryptRequestFollower> follower;
  if (reencryption) {
    reencryption->start(*image, std::move(passphrase));
  } else if (!image->read_only()) {
    // `rbd-luks reencrypt --online` runs here; the passphrase stays (in locked memory) for it.
    auto kept = std::make_shared<SecureBuffer>(std::move(passphrase));
    follower.emplace(
        *image, [kept]() -> Result<SecureBuffer> { return SecureBuffer::copy_of(kept->span()); }, 0);
  }
  const Status served_until_stop = server->run(stop_fd);
  const Status reencrypted = reencryption ? reencryption->stop() : Status{};
  follower.reset();  // a run it follows stops between steps
  server.reset();
  const bool image_unfinished = image->reencryption_unfinished();
  const Status closed = image->close();
  if (pidfile) unlink(pidfile->c_str());
  if (!served_until_stop && !closed) {
    return Error(Errc::failure,
                 served_until_stop.error().message() + "; and closing the image: " + closed.error().message());
  }
  RL_TRY(served_until_stop);
  RL_TRY(closed);
  RL_TRY(reencrypted);
  if (!reencryption && image_unfinished) {
    return Error(Errc::failure, "the server stopped before the online reencryption of " + args[0] +
                                    " finished; `rbd-luks reencrypt " + args[0] +
                                    "` finishes it, and no client opens the image until then");
  }
  inform(cl, "stopped; every request was answered and " + args[0] + " is flushed and closed");
  return {};
}

}  // namespace rbdluks::cli
