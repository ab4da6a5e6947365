// Where a LUKS2 reencryption stands, as its header records it, and the headers of its steps: the
// segments and digest assignments cryptsetup 2.6 writes (lib/luks2/luks2_reencrypt.c), so that
// either tool can finish what the other began.
//
// A forward reencryption of a volume whose data starts at D keeps, besides the old keyslots, new
// keyslots bound to a new digest, and a "reencrypt" keyslot:
//
//   segments    [D, D+p) new key  |  [D+p, D+p+h) "in-reencryption"  |  [D+p+h, end) old key
//               then "backup-previous" (the old segment whole) and "backup-final" (the new one)
//   requirement config.requirements.mandatory = ["online-reencrypt-v2"]
//
// p (progress) grows by one hotzone per step. The hotzone segment exists only while the hotzone is
// being rewritten ("hot" header); between steps there is none ("post" header). Every segment's
// iv_tweak is its offset from D in 512-byte units, so each sector keeps the IV it has in the
// volume as a whole.
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
  Luks2Segment previous;  // the old segment (backup-previous)
  Luks2Segment next;      // the new segment (backup-final)
  int old_digest = -1;
  int new_digest = -1;
  uint64_t data_size = 0;                  // bytes of data (what the "dynamic" segments cover)
  uint64_t progress = 0;                   // bytes from the data start that are under the new key
  std::optional<uint64_t> hotzone_length;  // set when a step was interrupted: [progress, +length)
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
