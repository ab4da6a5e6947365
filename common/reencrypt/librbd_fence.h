// The fence of a reencryption or an encryption that keeps librbd's native encryption from opening
// the volume until the end.
//
// librbd 16's native encryption opens a volume in reencryption with the new key alone
// (libcryptsetup's crypt_volume_key_get heeds no requirement) and would read the data not yet
// rewritten as noise. It asks for the key into a 64-byte buffer, and libcryptsetup sizes the key by
// the first keyslot of the new key's digest: a keyslot listed first there that holds a larger key
// makes that call fail, so librbd refuses to open the image. cryptsetup's reencryption opens
// keyslots one by one and never tries one of priority "ignore", so it resumes and finishes all the
// same. The fence holds random bytes under a random passphrase; the end removes it.
#pragma once

#include "luks2_metadata.h"
#include "reencrypt_run.h"
#include "result.h"

namespace rbdluks {

// Whether keyslot is such a fence in digest's keyslots (one that a run cryptsetup finished leaves
// behind, too).
bool is_librbd_fence(const Luks2Metadata& metadata, int digest, int keyslot);

// Lists a fence first in the new key's digest unless it is there already, and sets
// run.report.librbd_fenced. Errc::no_space when the keyslots area has no room for it.
Status add_librbd_fence(ReencryptRun& run);

}  // namespace rbdluks
