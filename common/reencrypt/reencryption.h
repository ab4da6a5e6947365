// Reencryption of a LUKS2 volume in place: a new random volume key (and optionally a new cipher or
// key size), every sector rewritten under it, every keyslot whose passphrase is given re-wrapped,
// crash-safe at every write and resumable by rbd-luks or cryptsetup 2.6.
//
// The state lives in the header (luks2_reencrypt_state.h): the run is a series of steps, each of
// which protects one hotzone with checksums (hotzone_checksums.h), marks it in the header, rewrites
// it, and moves the progress past it. A crash anywhere leaves a header that either says where the
// data changes key, or names the hotzone whose blocks the checksums sort into old and new; running
// again finishes the job. Until then the volume's mandatory requirement keeps every reader that
// could misread it (rbd-luks, librbd, cryptsetup's open) from opening it.
//
// Thin images: on backends whose peers read unwritten ranges as zeros (RBD), only the allocated
// extents are read and rewritten, and holes stay holes. All-zero ciphertext sectors (holes inside
// allocated objects, which rbd-luks reads as zeros) stay all zeros.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "raw_image.h"
#include "result.h"
#include "xts_cipher.h"

namespace rbdluks {

struct ReencryptOptions {
  std::optional<std::string> cipher;    // default: the volume's
  std::optional<uint32_t> key_bytes;    // default: the volume's
  std::optional<uint32_t> sector_size;  // default: the volume's
  uint64_t hotzone_bytes = 64 << 20;    // the most rewritten per step (less where the area is small)
  unsigned threads = 8;                 // reads and writes in flight, and cipher threads
  uint64_t io_bytes = 4 << 20;          // the unit of those reads and writes: an RBD object
  // The checksum resilience's hash (hotzone_checksums.h): cryptsetup's sha256, which cryptsetup can
  // resume, or kHeadChecksumHash, which hashes each block's first 64 bytes. Only a new run takes it.
  std::string checksum_hash = "sha256";
  bool drop_unopened_keyslots = false;  // --force: keyslots no passphrase opens are removed at the end
  bool minimal_digest_cost = false;     // new digests with 1000 PBKDF2 iterations (tests)
  // Called after every step with the data bytes done and the total.
  std::function<void(uint64_t done, uint64_t total)> progress;
  // Polled between steps; true stops the run there, resumable (SIGINT).
  std::function<bool()> stop_requested;
  // Called once the header records the run (no client opens the volume after that) and before any
  // data moves: an error stops the run there, resumable. The CLI fails it when another client has
  // the image open, one that may have opened it just before the header changed.
  std::function<Status()> check_alone;
  // An online run (EncryptedRbdImage::reencrypt): the data path of this process serves the volume
  // while the run moves it, and these keep the two apart. Empty for an offline run.
  struct Online {
    // Once both keys are unlocked and before any data moves: the new key and its cipher, and the
    // progress (the plaintext bytes [0, progress) already under it).
    std::function<Status(std::shared_ptr<const XtsCipher> new_cipher, std::span<const uint8_t> new_key,
                         uint64_t progress)>
        begin;
    // Keeps every request of the data path off the plaintext range [at, at + length) until the
    // result is destroyed; blocks until the requests on it now have ended.
    std::function<std::shared_ptr<void>(uint64_t at, uint64_t length)> hold;
    // A step is about to record the hotzone [at, at + length) in the header and rewrite it: until
    // advance(), the header's checksums alone tell its old blocks from its new ones, and a write
    // there would mislead them. A hold that ends before that advance (the step failed) leaves the
    // data path nothing safe to do with that range.
    std::function<void(uint64_t at, uint64_t length)> rewriting;
    // The header now says [0, progress) is under the new key.
    std::function<void(uint64_t progress)> advance;
    // Before each hotzone is held and read: an error ends the run there, between steps, as a stop
    // does (resumable). It may wait: it holds no hotzone, so requests wait at most for the step in
    // progress beside it.
    std::function<Status()> between_steps;
  } online;
};

struct ReencryptReport {
  bool resumed = false;               // the header already recorded a reencryption
  bool recovered_hotzone = false;     // and an interrupted step, finished from its checksums
  std::vector<int> new_keyslots;      // the keyslots of the new key
  std::vector<int> dropped_keyslots;  // old keyslots no passphrase opened (with drop_unopened_keyslots)
  uint64_t data_bytes = 0;            // the data segment's size
  uint64_t bytes_read = 0;            // data bytes read and written by the steps (not the header)
  uint64_t bytes_written = 0;
  uint64_t steps = 0;
  // The header keeps librbd's native encryption from opening the volume until the end (the fence
  // keyslot, reencryption.cc); false when the keyslots area had no room for it.
  bool librbd_fenced = false;
};

// Starts a reencryption of the LUKS2 volume on image, or resumes the one its header records, and
// runs it to the end. passphrases are tried against every keyslot. The caller holds the image's
// header lock. Errors: Errc::bad_key when no passphrase opens the volume (or, on a resume, either
// key); Errc::usage when keyslots would be lost (their passphrases are not given) without
// drop_unopened_keyslots, or for a sector size the data's size or offset is not a multiple of;
// Errc::unsupported for LUKS1, another cipher or a state this code does not resume; Errc::failure "stopped" when
// stop_requested ended it early.
Result<ReencryptReport> reencrypt_luks2(RawImage& image, const std::vector<std::span<const uint8_t>>& passphrases,
                                        const ReencryptOptions& options);

}  // namespace rbdluks
