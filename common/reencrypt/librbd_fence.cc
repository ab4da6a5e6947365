// The librbd fence: a keyslot no passphrase opens, listed first in the new key's digest.
#include "librbd_fence.h"

#include "luks2_keyslot.h"
#include "random.h"

namespace rbdluks {
namespace {

constexpr uint32_t kFenceKeyBytes = 65;  // the least over 64: its area is the smallest such (256 KiB)

}  // namespace

bool is_librbd_fence(const Luks2Metadata& md, int digest, int keyslot) {
  const auto it = md.keyslots.find(keyslot);
  return it != md.keyslots.end() && luks2_keyslot_digest(md, keyslot) == digest &&
         it->second.priority == Luks2Priority::ignore && it->second.key_size == kFenceKeyBytes;
}

Status add_librbd_fence(ReencryptRun& run) {
  Luks2Metadata& md = run.header.metadata;
  auto& slots = md.digests.at(run.state.new_digest).keyslots;
  if (!slots.empty() && is_librbd_fence(md, run.state.new_digest, slots.front())) {
    run.report.librbd_fenced = true;
    return {};
  }
  RL_TRY(make_keyslot_room(run, kFenceKeyBytes));
  RL_ASSIGN(const int id, luks2_free_keyslot_id(md));
  SecureBuffer noise(kFenceKeyBytes + 32);
  RL_TRY(fill_random(noise.span()));
  const KdfParams kdf{KdfType::pbkdf2, "sha256", 1000, 0, 0};
  RL_TRY(add_luks2_keyslot(run.header, run.image, id, noise.span().first(kFenceKeyBytes),
                           noise.span().subspan(kFenceKeyBytes), kdf, "aes-xts-plain64", 64));
  md.keyslots.at(id).priority = Luks2Priority::ignore;
  slots.insert(slots.begin(), id);
  run.report.librbd_fenced = true;
  return {};
}

}  // namespace rbdluks
