// The part of a reencryption that every mode shares, once its header holds the state: the keys, the
// steps (each moving one hotzone under the new key, crash-safe), the recovery of an interrupted
// step, and the end (librbd_fence.h keeps librbd out meanwhile). reencryption.cc starts a reencryption and
// encryption.cc an encryption; both then hand the run to run_to_end().
//
// A step, for a hotzone [at, at + length) of plaintext offsets:
//   read it (where the old data lies) and, with checksum resilience, hash its blocks;
//   with checksums: write them to the resilience area, flushed;
//   write the header with the hotzone "in-reencryption";
//   rewrite it under the new key (where the new data lies), flushed;
//   write the header with the progress past it.
// The next hotzone is read while a step rewrites its own.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "extent.h"
#include "luks2_header.h"
#include "luks2_reencrypt_state.h"
#include "raw_image.h"
#include "reencryption.h"
#include "result.h"
#include "secure_buffer.h"
#include "xts_cipher.h"

namespace rbdluks {

struct ReencryptKeys {
  SecureBuffer old_key, new_key;  // old_key empty: the old data is plaintext
  std::shared_ptr<const XtsCipher> old_cipher, new_cipher;
};

// What the steps work with: the image, the header and the state it records, the keys.
struct ReencryptRun {
  ReencryptRun(RawImage& run_image, const ReencryptOptions& run_options) : image(run_image), options(run_options) {}

  RawImage& image;
  Luks2Header header;
  Luks2ReencryptState state;
  ReencryptKeys keys;
  const ReencryptOptions& options;
  ReencryptReport report;
  // RBD: the raw extents that held data when the run (this process's part of it) began.
  std::vector<Extent> allocated;
  bool prepared = false;  // prepare_data_moves() has asked and read the above
};

// Writes run.header (crash-safely, both copies).
Status write_run_header(ReencryptRun& run);

// Unlocks the keys of a recorded run from the passphrases (the old one only when the old data is
// encrypted), checks the state's digest against them, and makes the ciphers. Errc::bad_key when a
// key does not open, Errc::bad_header when the digest does not match.
Status unlock_recorded_run(ReencryptRun& run, const std::vector<std::span<const uint8_t>>& passphrases);

// What comes before any data moves: once, asks options.check_alone and reads the allocation map
// (which the recovery of an encryption's step needs too: its holes are made where data was); then
// finishes the step a crash interrupted (the header names its hotzone), if any.
Status prepare_data_moves(ReencryptRun& run);

// Makes room in the keyslots area for a keyslot holding a key_bytes key: when no part of it is
// free, the resilience area gives up its end (cryptsetup gives it all the space left) and the
// state's digest is made anew for it. Only between steps: the area holds no checksums then.
Status make_keyslot_room(ReencryptRun& run, uint32_t key_bytes);

// Recovers an interrupted step, runs the remaining steps and ends the run: the header keeps the
// new keyslots, digest and segment only, and what held old keys or checksums is wiped. With
// stop_requested, stops between two steps (Errc::failure, "run the same command again").
Status run_to_end(ReencryptRun& run);

}  // namespace rbdluks
