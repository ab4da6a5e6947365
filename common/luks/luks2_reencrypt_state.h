// Where a LUKS2 reencryption stands, as its header records it, and the headers of its steps: the
// segments and digest assignments cryptsetup 2.6 writes (lib/luks2/luks2_reencrypt.c), so that
// either tool can finish what the other began.
//
// Two modes are modelled. A forward reencryption of a volume whose data starts at D keeps, besides
// the old keyslots, new keyslots bound to a new digest, and a "reencrypt" keyslot:
//
//   segments    [D, D+p) new key  |  [D+p, D+p+h) "in-reencryption"  |  [D+p+h, end) old key
//               then "backup-previous" (the old segment whole) and "backup-final" (the new one)
//   requirement config.requirements.mandatory = ["online-reencrypt-v2"]
//
// p (progress) grows by one hotzone per step. The hotzone segment exists only while the hotzone is
// being rewritten ("hot" header); between steps there is none ("post" header). Every segment's
// iv_tweak is its offset from D in 512-byte units, so each sector keeps the IV it has in the
// volume as a whole.
//
// An encryption (mode "encrypt", direction "backward", resilience "datashift" by S bytes) turns N
// bytes of plaintext at the start of a device of N + 2S bytes into a volume whose data starts at S.
// Its first S bytes wait, plain, at the device's end ("backup-moved-segment"), the header takes their
// place, and the rest moves up by S one hotzone at a time, from the end down, encrypted on the way;
// the waiting bytes move last. Segments, in plaintext order:
//
//   [0, S) plain at N+S  |  [S, a) plain in place  |  [a, a+h) "in-reencryption" at S+a  |  [N-q, N) at S+N-q
//
// q (progress) counts the bytes encrypted, from the end; "backup-previous" is the plaintext
// (linear, N bytes at 0), "backup-final" the volume to be (crypt at S).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "luks2_metadata.h"
#include "result.h"

namespace rbdluks {

struct Luks2ReencryptState {
  int keyslot = -1;  // the reencrypt keyslot
  Luks2ReencryptKeyslot resilience;
  Luks2Segment previous;              // the old segment (backup-previous)
  Luks2Segment next;                  // the new segment (backup-final)
  std::optional<Luks2Segment> moved;  // encryption: where the first S bytes wait (backup-moved-segment)
  int old_digest = -1;                // none (-1) when the old data is plaintext
  int new_digest = -1;
  uint64_t data_size = 0;                  // bytes of data (what the "dynamic" segments cover)
  uint64_t progress = 0;                   // bytes under the new key: from the start, or (encrypt) the end
  std::optional<uint64_t> hotzone_length;  // set when a step was interrupted (hotzone_begin())

  bool encrypting() const { return resilience.mode == "encrypt"; }
  // Where the next hotzone of hotzone_length bytes starts, in plaintext offsets.
  uint64_t hotzone_begin(uint64_t length) const { return encrypting() ? data_size - progress - length : progress; }
};

// The reencryption the header describes. Errc::unsupported for what this code does not resume (a
// mode other than reencrypt, the backward direction, resilience other than checksum or none, a
// requirement other than online-reencrypt-v2) and Errc::bad_header when the segments are not those
// of any step; data_size is the data's size in bytes (what a "dynamic" segment covers).
Result<Luks2ReencryptState> luks2_reencrypt_state(const Luks2Metadata& metadata, uint64_t data_size);

// Whether the header records a reencryption at all (a reencrypt keyslot or the requirement).
bool luks2_reencrypt_in_progress(const Luks2Metadata& metadata);

// Sets metadata's segments, and the segments its old and new digests cover, for the step at
// progress: with a hotzone of hotzone_length bytes being rewritten, or between steps (0).
void set_luks2_reencrypt_segments(Luks2Metadata& metadata, const Luks2ReencryptState& state, uint64_t progress,
                                  uint64_t hotzone_length);

// Adds the mandatory requirement "online-reencrypt-v2", or removes every "online-reencrypt*" one
// (and the requirements object when nothing is left).
void set_luks2_reencrypt_requirement(Luks2Metadata& metadata, bool required);

}  // namespace rbdluks
