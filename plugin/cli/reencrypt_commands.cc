// `reencrypt` (a new volume key for a LUKS2 volume, every sector rewritten in place), `encrypt`
// (a plaintext image made a LUKS2 volume in place) and `decrypt` (the reverse); each also finishes
// an interrupted run (reencrypt and encrypt: their own or cryptsetup's). The work is common/reencrypt's; these are the
// commands: key sources, the header lock, other clients, progress and Ctrl-C.
#include <unistd.h>

#include <iostream>
#include <memory>
#include <optional>

#include "commands.h"
#include "decryption.h"
#include "encryption.h"
#include "format_options.h"
#include "hotzone_checksums.h"
#include "key_source.h"
#include "luks2_header.h"
#include "luks2_keyslot.h"
#include "luks2_reencrypt_state.h"
#include "luks_volume.h"
#include "progress.h"
#include "rbd_image.h"
#include "reencrypt_options.h"
#include "reencryption.h"
#include "secret_file.h"
#include "stop_signal.h"
#include "target.h"
#include "volume_access.h"

namespace rbdluks::cli {
namespace {

// What both commands take: --hotzone-size, --threads, a progress bar, and Ctrl-C.
Result<ReencryptOptions> run_options_from(const CommandLine& cl, const std::string& label) {
  ReencryptOptions options;
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
  options.minimal_digest_cost = cl.has("pbkdf-force-iterations");
  // The bar appears once the total is known.
  auto progress = std::make_shared<std::optional<Progress>>();
  const bool shown = !cl.has("quiet") && isatty(STDERR_FILENO) != 0;
  options.progress = [progress, label, shown](uint64_t done, uint64_t total) {
    if (!*progress) progress->emplace(label, total, shown);
    (*progress)->update(done);
  };
  clear_stop_signal();
  options.stop_requested = [] { return stop_signalled(); };
  return options;
}

// The image of a rewrite, open read-write with its header lock held, and no other client on it:
// one that had it open would go on using the old key (or none). An RBD image's exclusive lock is
// held too, so that a client that opens it meanwhile cannot write (rbd_image.h).
struct Rewrite {
  Target target;
  std::unique_ptr<RawImage> image;
  std::unique_ptr<HeaderLock> header_lock;
};

constexpr const char* kOtherClient = "it would go on reading and writing the data as it was; close it first";

Result<Rewrite> open_for_rewrite(const CommandLine& cl, const std::string& spec, const std::string& command) {
  Rewrite out;
  RL_ASSIGN(out.target, parse_target(spec));
  if (out.target.snapshot) return Error(Errc::usage, spec + ": a snapshot cannot be rewritten");
  RL_ASSIGN(out.image, open_target(cl, out.target, OpenMode::read_write));
  RL_TRY(refuse_other_clients(*out.image, kOtherClient));
  if (auto* rbd = dynamic_cast<RbdImage*>(out.image.get())) {
    if (auto held = rbd->hold_exclusive_lock(); !held) {
      if (!held.error().is(Errc::unsupported)) return std::move(held).error();
      inform(cl, "warning: " + held.error().message() +
                     ": nothing but the check for other clients keeps them from writing during the run");
    }
  }
  RL_ASSIGN(out.header_lock, lock_header_for(*out.image, "rbd-luks " + command));
  return out;
}

// Asked again once the header records the run: a client may have opened the image in between.
void check_alone_later(ReencryptOptions& options, const Rewrite& rewrite) {
  options.check_alone = [&rewrite] {
    return refuse_other_clients(*rewrite.image, std::string(kOtherClient) + ", then run the same command again");
  };
}

void warn_if_unfenced(const CommandLine& cl, const Rewrite& rewrite, const ReencryptReport& report) {
  if (!report.librbd_fenced && rewrite.target.kind == Target::Kind::rbd) {
    inform(cl, "warning: the keyslots area had no room to keep librbd's native encryption out during the run");
  }
}

}  // namespace

Result<ReencryptOptions> reencrypt_options_from(const CommandLine& cl, const Target& target, bool resuming) {
  if (resuming && (cl.has("cipher") || cl.has("key-size") || cl.has("sector-size") || cl.has("resilience-hash"))) {
    return Error(Errc::usage,
                 "a reencryption is already under way: resuming it takes no --cipher, --key-size, "
                 "--sector-size or --resilience-hash (it keeps those it began with)");
  }
  RL_ASSIGN(ReencryptOptions options, run_options_from(cl, "reencrypt"));
  RL_ASSIGN(const auto sector_size, cl.get_uint("sector-size"));
  if (sector_size) {
    if (*sector_size > 4096) return Error(Errc::usage, "--sector-size must be 512, 1024, 2048 or 4096");
    options.sector_size = static_cast<uint32_t>(*sector_size);
  }
  options.cipher = cl.get("cipher");
  RL_ASSIGN(const auto key_bits, cl.get_uint("key-size"));
  if (key_bits) {
    if (*key_bits != 256 && *key_bits != 512) return Error(Errc::usage, "--key-size must be 256 or 512");
    options.key_bytes = static_cast<uint32_t>(*key_bits / 8);
  }
  options.drop_unopened_keyslots = cl.has("force");
  // On a file, cryptsetup can finish an interrupted run, which takes one of its hashes. An RBD image
  // it reaches only through a mapped device; there the head hash saves most of the run's CPU.
  if (auto hash = cl.get("resilience-hash")) {
    options.checksum_hash = *hash;
  } else if (target.kind == Target::Kind::rbd) {
    options.checksum_hash = kHeadChecksumHash;
  }
  return options;
}

Result<std::vector<SecureBuffer>> keyslot_passphrase_files(const CommandLine& cl) {
  std::vector<SecureBuffer> secrets;
  for (const std::string& path : cl.get_all("keyslot-passphrase-file")) {
    auto secret = read_secret_file(path);
    if (!secret) return Error(Errc::key_unavailable, "--keyslot-passphrase-file: " + secret.error().message());
    secrets.push_back(std::move(*secret));
  }
  return secrets;
}

Status cmd_reencrypt(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1,
                     "reencrypt TARGET [--keyslot-passphrase-file F]... [--cipher C] [--key-size BITS] "
                     "[--sector-size BYTES] [--resilience-hash HASH] [--resume] [--force] [--online]"));
  if (cl.has("online")) return online_reencrypt(cl, args[0]);
  // A usage error before the image is opened (reencrypt_luks2 checks it again before any change).
  if (auto hash = cl.get("resilience-hash")) RL_TRY(check_checksum_hash(*hash));
  RL_ASSIGN(Rewrite rewrite, open_for_rewrite(cl, args[0], "reencrypt"));
  RawImage& image = *rewrite.image;
  RL_TRY(refuse_recorded_decryption(image));
  RL_ASSIGN(const auto header, read_luks2_header(image));
  const bool resuming = luks2_reencrypt_in_progress(header.header.metadata);
  if (cl.has("resume") && !resuming) {
    return Error(Errc::usage, args[0] + ": no reencryption to resume (the header records none)");
  }
  RL_ASSIGN(ReencryptOptions options, reencrypt_options_from(cl, rewrite.target, resuming));
  check_alone_later(options, rewrite);

  std::vector<SecureBuffer> secrets;
  RL_ASSIGN(secrets.emplace_back(), passphrase_for(cl, image));
  RL_ASSIGN(auto others, keyslot_passphrase_files(cl));
  for (auto& secret : others) secrets.push_back(std::move(secret));
  std::vector<std::span<const uint8_t>> passphrases;
  passphrases.reserve(secrets.size());
  for (const auto& secret : secrets) passphrases.push_back(secret.span());

  const StopOnSignal signals;
  RL_ASSIGN(const ReencryptReport report, reencrypt_luks2(image, passphrases, options));
  // Said once the run is done: a failure prints one line, its error.
  if (resuming) inform(cl, "resumed the reencryption recorded in " + args[0]);
  warn_if_unfenced(cl, rewrite, report);
  RL_TRY(rewrite.header_lock->release());
  std::string line = "reencrypted " + args[0] + ": " + std::to_string(report.bytes_written) + " of " +
                     std::to_string(report.data_bytes) + " data bytes rewritten under a new volume key";
  if (!report.new_keyslots.empty()) line += "; the new key is in " + keyslot_list(report.new_keyslots);
  if (!report.dropped_keyslots.empty()) line += "; " + keyslot_list(report.dropped_keyslots) + " dropped";
  inform(cl, line);
  return {};
}

Status cmd_encrypt(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "encrypt TARGET [format options] [--passphrase-file F | --new-key ...]"));
  RL_ASSIGN(Rewrite rewrite, open_for_rewrite(cl, args[0], "encrypt"));
  RawImage& image = *rewrite.image;
  RL_ASSIGN(const FormatOptions format, format_options_from(cl));
  if (format.version != 2) return Error(Errc::usage, "encrypt makes LUKS2 volumes only (--type luks2)");
  RL_ASSIGN(ReencryptOptions options, run_options_from(cl, "encrypt"));
  options.minimal_digest_cost = format.kdf.force_iterations.has_value();
  check_alone_later(options, rewrite);
  // Refusals that come before a new key is recorded, which would replace the volume's reference.
  RL_TRY(refuse_recorded_decryption(image));
  RL_ASSIGN(const bool resuming, encryption_started(image));
  if (!resuming && holds_luks_magic(image)) {
    return Error(Errc::usage, args[0] + " holds a LUKS header already; nothing to encrypt");
  }

  // A new key is recorded before the run begins: if it stops half way, finishing it needs the key.
  std::optional<NewVolumeKey> new_key;
  SecureBuffer passphrase;
  if (resuming) {
    if (cl.has("new-key")) return Error(Errc::usage, args[0] + ": an encryption is under way; finish it with its key");
    RL_ASSIGN(passphrase, passphrase_for(cl, image));
  } else {
    RL_ASSIGN(new_key, key_for_new_volume(cl, rewrite.target.spec));
    RL_TRY(record_key_reference(image, *new_key));
  }
  const std::span<const uint8_t> key = new_key ? new_key->passphrase.span() : passphrase.span();

  const StopOnSignal signals;
  auto report = encrypt_luks2(image, key, format, options);
  if (!report) {
    // Nothing began (a refusal before the first change): the new key goes, and its reference.
    if (const auto started = encryption_started(image); new_key && started && !*started) {
      discard_new_key(cl, *new_key);
      static_cast<void>(image.remove_metadata(kKeyRefMetadataKey));
    }
    return std::move(report).error();
  }
  warn_if_unfenced(cl, rewrite, *report);
  RL_TRY(rewrite.header_lock->release());
  if (resuming) inform(cl, "resumed the encryption recorded in " + args[0]);
  if (new_key && new_key->reference)
    inform(cl, "key: " + new_key->reference->str() + " (recorded in the image metadata)");
  inform(cl, "encrypted " + args[0] + ": " + std::to_string(report->data_bytes) + " data bytes, " +
                 std::to_string(report->bytes_written) + " of them written, now LUKS2 with its data at offset " +
                 std::to_string(format.data_offset.value_or(16 << 20)) + "; keyslot 0 opens it");
  return {};
}

Status cmd_decrypt(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "decrypt TARGET [key source] [--resume] [--hotzone-size BYTES] [--threads N]"));
  RL_ASSIGN(Rewrite rewrite, open_for_rewrite(cl, args[0], "decrypt"));
  RawImage& image = *rewrite.image;
  RL_ASSIGN(ReencryptOptions options, run_options_from(cl, "decrypt"));
  check_alone_later(options, rewrite);
  RL_ASSIGN(const bool resuming, decryption_started(image));
  if (cl.has("resume") && !resuming) {
    return Error(Errc::usage, args[0] + ": no decryption to resume (the image metadata records none)");
  }
  RL_ASSIGN(const auto reference, image.get_metadata(kKeyRefMetadataKey));

  const StopOnSignal signals;
  const auto passphrase = [&cl, &image] { return passphrase_for(cl, image); };
  RL_ASSIGN(const ReencryptReport report,
            decrypt_volume(image, passphrase, options,
                           {kKeyRefMetadataKey, kPassphraseEncodingMetadataKey, kPreloadMetadataKey}));
  RL_TRY(rewrite.header_lock->release());
  if (resuming) inform(cl, "resumed the decryption recorded in " + args[0]);
  inform(cl, "decrypted " + args[0] + ": now a plain image of " + std::to_string(report.data_bytes) + " bytes, " +
                 std::to_string(report.bytes_written) + " of them written");
  if (reference) {
    inform(cl, "the key reference " + *reference +
                   " is no longer recorded in the image; snapshots taken before keep the old header and still "
                   "open with it (--key-ref); the key itself stays in its keyring");
  }
  return {};
}

}  // namespace rbdluks::cli
