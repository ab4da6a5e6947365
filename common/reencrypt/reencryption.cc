// Starting a reencryption (a new key, its keyslots, the state of step 0 in one header) and
// resuming one; the steps are reencrypt_run's.
#include "reencryption.h"

#include <algorithm>
#include <map>

#include "cipher_spec.h"
#include "decryption.h"
#include "hotzone_checksums.h"
#include "librbd_fence.h"
#include "luks2_header.h"
#include "luks2_keyslot.h"
#include "luks2_reencrypt_digest.h"
#include "luks2_reencrypt_state.h"
#include "luks_volume.h"
#include "random.h"
#include "reencrypt_run.h"
#include "sector_codec.h"

namespace rbdluks {
namespace {

constexpr uint64_t kBlock = 4096;  // checksum block: a filesystem block, and within one RADOS write

// A keyslot for the new key that the passphrase of old keyslot old_id opens, with that keyslot's KDF
// cost and priority, named by the tokens that name it.
Status add_twin(ReencryptRun& run, int old_id, std::span<const uint8_t> passphrase) {
  Luks2Metadata& md = run.header.metadata;
  RL_ASSIGN(const int id, luks2_free_keyslot_id(md));
  const Luks2Keyslot old_slot = md.keyslots.at(old_id);
  RL_TRY(make_keyslot_room(run, static_cast<uint32_t>(run.keys.new_key.size())));
  RL_TRY(add_luks2_keyslot(run.header, run.image, id, run.keys.new_key.span(), passphrase, old_slot.kdf,
                           run.state.next.encryption));
  md.keyslots.at(id).priority = old_slot.priority;
  luks2_tokens_add_keyslot(md, old_id, id);
  md.digests.at(run.state.new_digest).keyslots.push_back(id);
  run.report.new_keyslots.push_back(id);
  return {};
}

// On a resume, a passphrase that opens an old keyslot but no new one gets its twin now: a run
// cryptsetup began with --key-slot N re-wrapped that keyslot only, and the end drops the old ones.
Status twin_given_passphrases(ReencryptRun& run, const std::vector<std::span<const uint8_t>>& passphrases) {
  const Luks2Metadata& md = run.header.metadata;
  const auto opens = [&](int digest, std::span<const uint8_t> passphrase) -> Result<std::vector<int>> {
    std::vector<int> ids;
    for (const int id : md.digests.at(digest).keyslots) {
      RL_ASSIGN(const auto key, try_open_luks2_keyslot(run.image, md, id, passphrase));
      if (key) ids.push_back(id);
    }
    return ids;
  };
  for (const auto& passphrase : passphrases) {
    RL_ASSIGN(const std::vector<int> new_ones, opens(run.state.new_digest, passphrase));
    if (!new_ones.empty()) continue;
    RL_ASSIGN(const std::vector<int> old_ones, opens(run.state.old_digest, passphrase));
    for (const int old_id : old_ones) RL_TRY(add_twin(run, old_id, passphrase));
  }
  return {};
}

// A new sector size must divide the data's offset and size: the segment is made of whole sectors.
Status check_sector_size(RawImage& image, const Luks2Segment& segment, uint64_t data_size) {
  const uint32_t sector = segment.sector_size;
  if (sector < 512 || sector > 4096 || (sector & (sector - 1)) != 0) {
    return Error(Errc::usage, "--sector-size must be 512, 1024, 2048 or 4096");
  }
  if (segment.offset % sector != 0 || data_size % sector != 0) {
    return Error(Errc::usage, image.name() + ": the data (" + std::to_string(data_size) + " bytes at offset " +
                                  std::to_string(segment.offset) + ") is not a whole number of " +
                                  std::to_string(sector) + "-byte sectors");
  }
  return {};
}

// Starts a reencryption: the new key, its keyslots (one for each old one a passphrase opens, with
// the same KDF cost and priority), and the state of step 0, written in one header.
Status begin(ReencryptRun& run, const std::vector<std::span<const uint8_t>>& passphrases, uint64_t raw_size) {
  Luks2Metadata& md = run.header.metadata;
  if (!md.unsupported.empty()) return Error(Errc::unsupported, run.image.name() + ": " + md.unsupported.front());
  if (md.segments.size() != 1) return Error(Errc::unsupported, run.image.name() + ": more than one data segment");
  const Luks2Segment old_segment = md.segments.at(0);
  const auto old_digest = luks2_segment_digest(md, 0);
  if (!old_digest) return Error(Errc::bad_header, run.image.name() + ": the data segment has no digest");

  // A fence that a run cryptsetup finished left behind (librbd_fence.h) holds no key: it goes.
  for (const int id : std::vector<int>(md.digests.at(*old_digest).keyslots)) {
    if (!is_librbd_fence(md, *old_digest, id)) continue;
    md.keyslots.erase(id);
    std::erase(md.digests.at(*old_digest).keyslots, id);
    luks2_tokens_drop_keyslot(md, id);
  }

  // Which keyslot each passphrase opens, and the old key.
  std::map<int, size_t> opened;  // keyslot -> passphrase
  std::vector<int> bound = md.digests.at(*old_digest).keyslots;
  std::sort(bound.begin(), bound.end());
  for (size_t p = 0; p < passphrases.size(); ++p) {
    for (const int id : bound) {
      if (opened.contains(id)) continue;
      RL_ASSIGN(auto key, try_open_luks2_keyslot(run.image, md, id, passphrases[p]));
      if (!key) continue;
      opened[id] = p;
      if (run.keys.old_key.empty()) run.keys.old_key = std::move(*key);
    }
  }
  if (opened.empty()) return Error(Errc::bad_key, run.image.name() + ": no keyslot opens with the passphrases given");
  std::vector<int> unopened;
  for (const int id : bound) {
    if (!opened.contains(id)) unopened.push_back(id);
  }
  if (!unopened.empty() && !run.options.drop_unopened_keyslots) {
    return Error(Errc::usage, run.image.name() + ": no passphrase given opens " + keyslot_list(unopened) +
                                  ", which would stop working; give its passphrase too, or drop it with --force");
  }
  run.report.dropped_keyslots = unopened;

  Luks2Segment new_segment = old_segment;
  new_segment.json = nlohmann::ordered_json::object();
  new_segment.encryption = run.options.cipher.value_or(old_segment.encryption);
  new_segment.sector_size = run.options.sector_size.value_or(old_segment.sector_size);
  const uint64_t data_size = data_segment_size(raw_size, old_segment.offset, old_segment.sector_size, old_segment.size);
  RL_TRY(check_sector_size(run.image, new_segment, data_size));
  RL_TRY(check_checksum_hash(run.options.checksum_hash));
  const uint32_t new_key_bytes = run.options.key_bytes.value_or(static_cast<uint32_t>(run.keys.old_key.size()));
  run.keys.new_key = SecureBuffer(new_key_bytes);
  RL_TRY(fill_random(run.keys.new_key.span()));
  RL_ASSIGN(run.keys.old_cipher, make_cipher(old_segment.encryption, run.keys.old_key.span()));
  RL_ASSIGN(run.keys.new_cipher, make_cipher(new_segment.encryption, run.keys.new_key.span()));

  // The new keyslots, in free parts of the keyslots area, flushed before the header lists them.
  RL_ASSIGN(Luks2Digest new_digest, new_luks2_digest(run.keys.new_key.span(), run.options.minimal_digest_cost));
  RL_ASSIGN(const int new_digest_id, luks2_free_digest_id(md));
  md.digests[new_digest_id] = std::move(new_digest);
  run.state.new_digest = new_digest_id;
  run.state.next = new_segment;
  run.state.next.flags = {"backup-final"};
  for (const auto& [old_id, passphrase] : opened) RL_TRY(add_twin(run, old_id, passphrases[passphrase]));
  if (auto fenced = add_librbd_fence(run); !fenced && !fenced.error().is(Errc::no_space)) return fenced;

  // The checksum area: the largest part of the keyslots area left.
  RL_ASSIGN(const int reencrypt_id, luks2_free_keyslot_id(md));
  const auto [area_offset, area_size] = luks2_largest_free_area(md, run.header.hdr_size);
  Luks2ReencryptKeyslot slot;
  slot.mode = "reencrypt";
  slot.direction = "forward";
  slot.area_type = "checksum";
  slot.area_offset = area_offset;
  slot.area_size = area_size;
  slot.hash = run.options.checksum_hash;
  // Checksum blocks hold whole sectors of both sizes, as cryptsetup's do.
  slot.sector_size = data_size % kBlock == 0 ? static_cast<uint32_t>(kBlock)
                                             : std::max(old_segment.sector_size, new_segment.sector_size);
  RL_ASSIGN(const uint64_t capacity, checksum_capacity(slot));
  if (capacity < slot.sector_size) {
    return Error(Errc::no_space,
                 run.image.name() + ": the keyslots area has no room left for the reencryption's checksums");
  }
  md.reencrypt_keyslots[reencrypt_id] = slot;

  run.state.keyslot = reencrypt_id;
  run.state.resilience = slot;
  run.state.previous = old_segment;
  run.state.previous.json = nlohmann::ordered_json::object();
  run.state.previous.flags = {"backup-previous"};
  run.state.old_digest = *old_digest;
  run.state.data_size = data_size;
  run.state.progress = 0;
  set_luks2_reencrypt_segments(md, run.state, 0, 0);
  set_luks2_reencrypt_requirement(md, true);
  RL_TRY(assign_luks2_reencrypt_digest(md, run.keys.old_key.span(), run.keys.new_key.span(),
                                       run.options.minimal_digest_cost));
  // A stop asked for while the keyslots were made (their KDFs take seconds) ends the run before the
  // header records it: the volume is as it was (the new keyslots' material sits in areas no header
  // refers to).
  if (run.options.stop_requested && run.options.stop_requested()) {
    return Error(Errc::failure, run.image.name() + ": stopped before the reencryption began; nothing changed");
  }
  return write_run_header(run);
}

}  // namespace

Result<ReencryptReport> reencrypt_luks2(RawImage& image, const std::vector<std::span<const uint8_t>>& passphrases,
                                        const ReencryptOptions& options) {
  RL_TRY(refuse_recorded_decryption(image));
  auto loaded = read_luks2_header(image);
  if (!loaded) {
    if (auto volume = load_luks(image); volume && (*volume)->layout().version == 1) {
      return Error(Errc::unsupported, image.name() + ": LUKS1 volumes are not reencrypted; only LUKS2");
    }
    return std::move(loaded).error();
  }
  RL_ASSIGN(const uint64_t raw_size, image.size());
  ReencryptRun run(image, options);
  run.header = std::move(loaded->header);
  if (luks2_reencrypt_in_progress(run.header.metadata)) {
    RL_ASSIGN(run.state, luks2_reencrypt_state(run.header.metadata, raw_size));
    if (run.state.encrypting()) {
      return Error(Errc::usage,
                   image.name() + ": an encryption is under way; run `rbd-luks encrypt` again to finish it");
    }
    RL_TRY(unlock_recorded_run(run, passphrases));
    run.report.resumed = true;
    // New keyslots may take room from the resilience area, which holds no checksums once the
    // interrupted step is done.
    RL_TRY(prepare_data_moves(run));
    RL_TRY(twin_given_passphrases(run, passphrases));
    // A run cryptsetup began has no fence; one that fits goes in before any data moves.
    if (auto fenced = add_librbd_fence(run); !fenced && !fenced.error().is(Errc::no_space)) {
      return std::move(fenced).error();
    }
    RL_TRY(write_run_header(run));
  } else {
    RL_TRY(begin(run, passphrases, raw_size));
  }
  RL_TRY(run_to_end(run));
  return std::move(run.report);
}

}  // namespace rbdluks
