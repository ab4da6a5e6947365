// `reencrypt`: a new volume key for a LUKS2 volume, every sector rewritten, in place; also resumes
// an interrupted run (its own or cryptsetup's). The work is common/reencrypt's; this is the
// command: key sources, the header lock, other clients, progress and Ctrl-C.
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <optional>

#include "commands.h"
#include "key_source.h"
#include "luks2_header.h"
#include "luks2_reencrypt_state.h"
#include "progress.h"
#include "reencryption.h"
#include "secret_file.h"
#include "target.h"
#include "volume_access.h"

namespace rbdluks::cli {
namespace {

volatile std::sig_atomic_t stop_signal = 0;

void request_stop(int signal) { stop_signal = signal; }

// SIGINT and SIGTERM end the run after the step at hand, with a header that says where it stopped;
// a second one ends the process at once (the header is then as safe: every step is crash-safe).
class StopOnSignal {
 public:
  StopOnSignal() {
    struct sigaction action {};
    action.sa_handler = request_stop;
    action.sa_flags = SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopOnSignal() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

std::string list(const std::vector<int>& ids) {
  std::string out;
  for (const int id : ids) out += (out.empty() ? "" : ", ") + std::to_string(id);
  return out;
}

Result<ReencryptOptions> options_from(const CommandLine& cl, bool resuming) {
  ReencryptOptions options;
  if (resuming && (cl.has("cipher") || cl.has("key-size") || cl.has("sector-size"))) {
    return Error(Errc::usage,
                 "a reencryption is already under way: resuming it takes no --cipher, --key-size or "
                 "--sector-size (it keeps those it began with)");
  }
  if (cl.has("sector-size")) {
    return Error(Errc::unsupported, "reencrypt keeps the sector size; --sector-size is not supported");
  }
  options.cipher = cl.get("cipher");
  RL_ASSIGN(const auto key_bits, cl.get_uint("key-size"));
  if (key_bits) {
    if (*key_bits != 256 && *key_bits != 512) return Error(Errc::usage, "--key-size must be 256 or 512");
    options.key_bytes = static_cast<uint32_t>(*key_bits / 8);
  }
  RL_ASSIGN(const auto hotzone, cl.get_size("hotzone-size"));
  if (hotzone) {
    if (*hotzone < 4096 || *hotzone % 4096 != 0) {
      return Error(Errc::usage, "--hotzone-size must be a multiple of 4096 bytes");
    }
    options.hotzone_bytes = *hotzone;
  }
  RL_ASSIGN(const auto threads, cl.get_uint("threads"));
  if (threads) {
    if (*threads == 0 || *threads > 64) return Error(Errc::usage, "--threads must be from 1 to 64");
    options.threads = static_cast<unsigned>(*threads);
  }
  options.drop_unopened_keyslots = cl.has("force");
  options.minimal_digest_cost = cl.has("pbkdf-force-iterations");
  return options;
}

}  // namespace

Status cmd_reencrypt(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1,
                     "reencrypt TARGET [--keyslot-passphrase-file F]... [--cipher C] [--key-size BITS] [--resume] "
                     "[--force]"));
  RL_ASSIGN(const Target target, parse_target(args[0]));
  if (target.snapshot) return Error(Errc::usage, args[0] + ": a snapshot cannot be reencrypted");
  RL_ASSIGN(auto image, open_target(cl, target, OpenMode::read_write));
  // A client that has the volume open would go on writing under the old key.
  RL_TRY(refuse_other_clients(target, *image, "it would go on writing under the old key; close it first"));
  RL_ASSIGN(auto header_lock, lock_header_for(*image, "rbd-luks reencrypt"));

  RL_ASSIGN(const auto header, read_luks2_header(*image));
  const bool resuming = luks2_reencrypt_in_progress(header.header.metadata);
  if (cl.has("resume") && !resuming) {
    return Error(Errc::usage, args[0] + ": no reencryption to resume (the header records none)");
  }
  RL_ASSIGN(ReencryptOptions options, options_from(cl, resuming));

  std::vector<SecureBuffer> secrets;
  RL_ASSIGN(secrets.emplace_back(), passphrase_for(cl, *image));
  for (const std::string& path : cl.get_all("keyslot-passphrase-file")) {
    auto secret = read_secret_file(path);
    if (!secret) return Error(Errc::key_unavailable, "--keyslot-passphrase-file: " + secret.error().message());
    secrets.push_back(std::move(*secret));
  }
  std::vector<std::span<const uint8_t>> passphrases;
  passphrases.reserve(secrets.size());
  for (const auto& secret : secrets) passphrases.push_back(secret.span());

  std::optional<Progress> progress;  // once the total is known
  options.progress = [&](uint64_t done, uint64_t total) {
    if (!progress) progress.emplace("reencrypt", total, !cl.has("quiet") && isatty(STDERR_FILENO) != 0);
    progress->update(done);
  };
  stop_signal = 0;
  options.stop_requested = [] { return stop_signal != 0; };
  if (resuming) inform(cl, "resuming the reencryption recorded in " + args[0]);

  const StopOnSignal signals;
  RL_ASSIGN(const ReencryptReport report, reencrypt_luks2(*image, passphrases, options));
  if (!report.librbd_fenced && target.kind == Target::Kind::rbd) {
    inform(cl, "warning: the keyslots area had no room to keep librbd's native encryption out during the run");
  }
  RL_TRY(header_lock->release());
  std::string line = "reencrypted " + args[0] + ": " + std::to_string(report.bytes_written) + " of " +
                     std::to_string(report.data_bytes) + " data bytes rewritten under a new volume key";
  if (!report.new_keyslots.empty()) line += "; keyslots " + list(report.new_keyslots) + " open it";
  if (!report.dropped_keyslots.empty()) line += "; keyslots " + list(report.dropped_keyslots) + " were dropped";
  inform(cl, line);
  return {};
}

}  // namespace rbdluks::cli
