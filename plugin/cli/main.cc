// rbd-luks: the command-line entry point. Parses the command line, runs one command and turns its
// result into the one-line error and exit code that docs/cli.md promises.
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <new>

#include "command_line.h"
#include "commands.h"
#include "printable_text.h"
#include "secure_arena.h"

namespace rbdluks::cli {
namespace {

constexpr const char* kUsage = R"(usage: rbd-luks [GLOBAL OPTIONS] COMMAND ARGS...

Targets: file:PATH | rbd:POOL[/NAMESPACE]/IMAGE[@SNAP] | POOL/IMAGE

Commands:
  create TARGET --size BYTES [format options]   create an image and format it
  format TARGET [format options] [--force]      write a new LUKS header with one keyslot
  dump TARGET [--json]                          print the header (no keys)
  dump TARGET --dump-volume-key --volume-key-file FILE
  check TARGET                                  exit 0 when the key opens a keyslot
  import SRC TARGET [--offset BYTES] [--sparse-size BYTES]
                                                write plaintext from SRC (file or -); zero blocks
                                                of the sparse size stay unwritten (default 4K
                                                for LUKS2 on RBD, else 0: every byte)
  export TARGET DST [--sparse-size BYTES]       write the whole plaintext to DST (file or -), a
                                                sparse file where it reads zeros
  du TARGET [--json]                            plaintext size and what the image uses
  read TARGET --offset N --length L             plaintext bytes to stdout
  write TARGET --offset N [--length L]          plaintext bytes from stdin
  resize TARGET --size BYTES                    set the plaintext size
  reencrypt TARGET [--keyslot-passphrase-file F]... [--cipher C] [--key-size BITS] [--sector-size B] [--force]
                                                a new volume key, every sector rewritten in place;
                                                keyslots of the passphrases given keep working
                                                (--force drops the others); run again (or --resume)
                                                to finish an interrupted run; --resilience-hash H
                                                (default: sha256 on files, rbd-luks-sha256-head64
                                                on RBD)
  reencrypt TARGET --online [--cipher C] [--key-size BITS] [--force]
                                                the same in the client that has the image open
                                                (preload library, nbd-server); needs no key
  encrypt TARGET [format options] [key source | --new-key ...]
                                                a plaintext image becomes a LUKS2 volume in place
                                                (its data moves up by the data offset; an RBD
                                                image grows by it); run again to finish
  decrypt TARGET [key source]                   the reverse: the volume's plaintext moves down
                                                over the header, the image ends as its plain data;
                                                run again (or --resume) to finish
  keyslot list TARGET
  keyslot add TARGET --new-passphrase-file F [--key-slot N]
  keyslot remove TARGET SLOT
  key-ref set TARGET REF [--passphrase-encoding raw|hex]
                                                record REF in the image metadata once it opens a keyslot
  key-ref show TARGET [--json]                  the key reference recorded in the image metadata
  key-ref clear TARGET                          forget it
  preload enable TARGET                         let librbd_luks_preload.so decrypt the image for
                                                programs on librbd (QEMU, qemu-img, fio), once the
                                                key opens a keyslot
  preload disable TARGET [--force] | preload status TARGET [--json]
  nbd-server TARGET (--socket PATH | --port PORT [--address HOST]) [--read-only] [--pidfile F]
           [--reencrypt [--keyslot-passphrase-file F]... [--cipher C] [--key-size BITS] [--force]]
                                                serve the plaintext over NBD until SIGINT/SIGTERM;
                                                --reencrypt: a new volume key meanwhile
  bench crypto                                  cipher backend and GB/s per sector size
  bench io [POOL] [--size S] [--block-sizes 4K,..] [--queue-depths 1,..] [--rw write,read]
           [--paths plain,rbd-luks,native] [--misalign B] [--seconds S] [--rounds N] [--json]
                                                plain librbd vs rbd-luks vs native encryption

Key source: --passphrase-file FILE (- for stdin) | --key-ref barbican:UUID|config-key:KEY|file:PATH
  [--passphrase-encoding raw|hex] | none: the reference in the image metadata
  --accept-key-refs LIST: take only these from the metadata, e.g. config-key,barbican,file:/etc/keys
  --config FILE: OpenStack settings for barbican (else $RBD_LUKS_CONF, /etc/rbd-luks/rbd-luks.conf, OS_*)
Format options: --type luks2|luks1  --cipher aes-xts-plain64  --key-size 256|512
  --sector-size 512|1024|2048|4096  --pbkdf argon2id|argon2i|pbkdf2  --iter-time MS
  --pbkdf-force-iterations N  --pbkdf-memory KIB  --pbkdf-parallel N  --hash NAME  --uuid UUID

Exit codes: 0 ok, 1 failure, 2 usage, 3 wrong key, 4 no valid LUKS header, 5 key not fetched
)";

int exit_code(const Error& error) {
  if (error.code().category() != rbdluks_category()) return 1;
  switch (static_cast<Errc>(error.code().value())) {
    case Errc::usage:
      return 2;
    case Errc::bad_key:
      return 3;
    case Errc::bad_header:
      return 4;
    case Errc::key_unavailable:
      return 5;
    default:
      return 1;
  }
}

void warn_secure_memory(const char* message) { std::fprintf(stderr, "rbd-luks: warning: %s\n", message); }

// Keys live in process memory while we run: keep them out of core dumps and ptrace, and say so if
// they cannot be kept out of swap.
void harden_process() {
  const rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  set_secure_memory_warning(warn_secure_memory);
}

Status run(int argc, const char* const* argv) {
  RL_ASSIGN(auto cl, CommandLine::parse(argc, argv));
  const auto& words = cl.positional();
  if (cl.has("help")) {
    std::fputs(kUsage, stdout);
    return {};
  }
  if (words.empty()) return Error(Errc::usage, "no command given (see rbd-luks --help)");
  using Handler = std::function<Status(const CommandLine&, const Args&)>;
  static const std::map<std::string, Handler> commands = {
      {"create", cmd_create},
      {"format", cmd_format},
      {"dump", cmd_dump},
      {"check", cmd_check},
      {"keyslot", cmd_keyslot},
      {"key-ref", cmd_key_ref},
      {"import", cmd_import},
      {"export", cmd_export},
      {"read", cmd_read},
      {"write", cmd_write},
      {"resize", cmd_resize},
      {"bench", cmd_bench},
      {"du", cmd_du},
      {"preload", cmd_preload},
      {"nbd-server", cmd_nbd_server},
      {"reencrypt", cmd_reencrypt},
      {"encrypt", cmd_encrypt},
      {"decrypt", cmd_decrypt},
  };
  auto it = commands.find(words[0]);
  if (it == commands.end()) return Error(Errc::usage, "unknown command '" + words[0] + "' (see rbd-luks --help)");
  return it->second(cl, Args(words.begin() + 1, words.end()));
}

// run(), with any exception that escapes a library below turned into an Error: the contract is one
// line and an exit code, never an abort.
Status run_guarded(int argc, const char* const* argv) {
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc&) {
    return Error(Errc::failure, "out of memory");
  } catch (const std::exception& e) {
    return Error(Errc::failure, std::string("internal error: ") + e.what());
  } catch (...) {
    return Error(Errc::failure, "internal error: unknown exception");
  }
}

}  // namespace
}  // namespace rbdluks::cli

int main(int argc, char** argv) {
  rbdluks::cli::harden_process();
  rbdluks::Status status = rbdluks::cli::run_guarded(argc, argv);
  std::fflush(stdout);
  if (status) return 0;
  // Messages quote header fields, metadata and paths: escaped, so the error stays one line.
  std::fprintf(stderr, "rbd-luks: error: %s\n", rbdluks::printable(status.error().message()).c_str());
  return rbdluks::cli::exit_code(status.error());
}
