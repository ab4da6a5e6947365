// The steps of a reencryption or an encryption, their recovery, and the end.
#include "reencrypt_run.h"

#include <algorithm>
#include <array>
#include <atomic>

#include "chunked_io.h"
#include "cipher_spec.h"
#include "hotzone_checksums.h"
#include "keyslot_material.h"
#include "librbd_fence.h"
#include "luks2_keyslot.h"
#include "luks2_reencrypt_digest.h"
#include "random.h"
#include "sector_codec.h"

namespace rbdluks {
namespace {

bool with_checksums(const ReencryptRun& run) { return run.state.resilience.area_type == "checksum"; }

// Whether the data path of this process serves the volume meanwhile (ReencryptOptions::online).
bool online(const ReencryptRun& run) { return static_cast<bool>(run.options.online.hold); }

// The unit a step decides on and writes whole: the checksum block (a write that tore one would
// leave it neither old nor new to its checksum), else the sector.
uint64_t block_size(const ReencryptRun& run) {
  return with_checksums(run) ? run.state.resilience.sector_size : run.state.next.sector_size;
}

// Where the plaintext offset `at` of a hotzone lies now, and where it goes. An encryption's first
// bytes wait in the moved segment; everything else of the old data lies where the old segment says.
uint64_t source_offset(const ReencryptRun& run, uint64_t at) {
  const auto& moved = run.state.moved;
  if (moved && at < moved->size.value_or(0)) return moved->offset + at;
  return run.state.previous.offset + at;
}
uint64_t dest_offset(const ReencryptRun& run, uint64_t at) { return run.state.next.offset + at; }

// The progress before and after the hotzone [at, at + length): forward from the start, or, for an
// encryption, back from the end.
uint64_t progress_before(const ReencryptRun& run, uint64_t at, uint64_t length) {
  return run.state.encrypting() ? run.state.data_size - at - length : at;
}
uint64_t progress_after(const ReencryptRun& run, uint64_t at, uint64_t length) {
  return run.state.encrypting() ? run.state.data_size - at : at + length;
}

Error stopped(const ReencryptRun& run) {
  return Error(Errc::failure, run.image.name() + ": " + run.state.resilience.mode + " stopped with " +
                                  std::to_string(run.state.progress) + " of " + std::to_string(run.state.data_size) +
                                  " bytes done; run the same command again to finish it");
}

// A hotzone read ahead: its old data and, for checksum resilience, its blocks' hashes. Online, the
// hold keeps the data path off it from before the read until the header says it is done, so no
// write slips in between the read and the rewrite, and no request sees it change key half way.
struct ReadZone {
  uint64_t at = 0;
  uint64_t length = 0;
  std::vector<uint8_t> data;
  std::vector<uint8_t> hashes;
  std::shared_ptr<void> hold;
};

// Reads zone.length bytes at zone.at, and hashes each chunk's blocks on the thread that read it.
// Touches nothing of run but the image, so it may run beside a step.
Status read_zone(const ReencryptRun& run, ReadZone& zone) {
  if (online(run)) {
    // Before the hold: the check may wait, and requests on the zone must not wait with it.
    if (run.options.online.between_steps) RL_TRY(run.options.online.between_steps());
    zone.hold = run.options.online.hold(zone.at, zone.length);
  }
  zone.data.resize(zone.length);
  const bool checksums = with_checksums(run);
  if (checksums) {
    RL_ASSIGN(const size_t hashes_size, checksums_size(run.state.resilience, zone.length));
    zone.hashes.resize(hashes_size);
  }
  const auto read_chunk = [&](uint64_t begin, uint64_t end) -> Status {
    const auto part = std::span(zone.data).subspan(begin, end - begin);
    RL_TRY(run.image.read(source_offset(run, zone.at) + begin, part));
    if (!checksums) return Status{};
    // Chunks are whole blocks (io_bytes and hotzones are multiples of the block), so each chunk's
    // hashes have a place of their own.
    const uint64_t first = begin * zone.hashes.size() / zone.length;
    const uint64_t count = part.size() * zone.hashes.size() / zone.length;
    return hash_blocks(run.state.resilience, part, std::span(zone.hashes).subspan(first, count));
  };
  return for_each_chunk(zone.length, run.options.io_bytes, run.options.threads, read_chunk);
}

// Moves the hotzone's data under the new key where the new segment has it, then flushes.
//
// Reencryption: blocks whose ciphertext is all zeros (holes) are neither changed nor written: a
// write of zeros would turn a hole in an RBD object, which librbd's native layer reads as zeros on
// BlueStore, into written zeros, which it decrypts to noise. A block with data is written whole,
// its all-zero sectors as encrypted zeros (they read as zeros before and after). With still_old,
// the blocks it says hold new ciphertext already are left too.
// Encryption: plaintext blocks of zeros on RBD become holes (as `import` leaves them) wherever the
// destination held data, and stay unwritten where it did not; on files every sector is encrypted,
// as cryptsetup does.
Status rewrite_zone(ReencryptRun& run, std::span<uint8_t> zone, uint64_t at, const std::vector<bool>* still_old) {
  enum class Action { write, make_hole, leave };
  const uint32_t old_sector = run.state.previous.sector_size;
  const uint32_t new_sector = run.state.next.sector_size;
  const uint64_t block = block_size(run);
  const bool encrypting = run.state.encrypting();
  const bool thin = run.image.peers_read_holes_as_zeros();
  const uint64_t dest = dest_offset(run, at);
  // Decided block by block, never sector by sector: see block_size().
  const auto action = [&](uint64_t b) {
    const bool zero = is_zero(zone.subspan(b, block));
    if (encrypting) return thin && zero ? Action::make_hole : Action::write;
    if (zero || (still_old != nullptr && !(*still_old)[b / block])) return Action::leave;
    return Action::write;
  };
  std::atomic<uint64_t> written{0};
  const auto apply = [&](Action what, uint64_t begin, uint64_t end) -> Status {
    if (begin == end || what == Action::leave) return {};
    if (what == Action::make_hole) {
      if (!overlaps(run.allocated, dest + begin, dest + end)) return {};  // a hole already
      return run.image.write_zeroes(dest + begin, end - begin);
    }
    const auto part = zone.subspan(begin, end - begin);
    if (!encrypting) decrypt_sectors(*run.keys.old_cipher, part, old_sector, at + begin);
    encrypt_sectors(*run.keys.new_cipher, part, new_sector, at + begin);
    written += part.size();
    return run.image.write(dest + begin, part);
  };
  // Each chunk in runs of sectors that take the same action.
  const auto rewrite_chunk = [&](uint64_t begin, uint64_t end) -> Status {
    uint64_t run_begin = begin;
    Action current = action(begin);
    for (uint64_t b = begin + block; b < end; b += block) {
      const Action next = action(b);
      if (next == current) continue;
      RL_TRY(apply(current, run_begin, b));
      run_begin = b;
      current = next;
    }
    return apply(current, run_begin, end);
  };
  RL_TRY(for_each_chunk(zone.size(), run.options.io_bytes, run.options.threads, rewrite_chunk));
  run.report.bytes_written += written;
  // Durable before the header says these sectors are under the new key.
  return run.image.flush();
}

// The header that ends a step: the hotzone [at, at + length) is under the new key. Online, the
// data path learns it then, and may have the hotzone back.
Status commit_progress_past(ReencryptRun& run, ReadZone& zone) {
  run.state.progress = progress_after(run, zone.at, zone.length);
  set_luks2_reencrypt_segments(run.header.metadata, run.state, run.state.progress, 0);
  RL_TRY(write_run_header(run));
  if (online(run)) run.options.online.advance(run.state.progress);
  zone.hold.reset();
  return {};
}

// One step: the zone's data moves to the new key. Its checksums go to the area only now: until the
// previous step's last header is written, the area protects that step.
Status step(ReencryptRun& run, ReadZone& zone) {
  run.report.bytes_read += zone.length;
  if (!zone.hashes.empty()) {
    RL_TRY(store_hotzone_checksums(run.image, run.state.resilience, zone.hashes));
    RL_TRY(run.image.flush());  // before the header that points at them
  }
  run.state.progress = progress_before(run, zone.at, zone.length);
  set_luks2_reencrypt_segments(run.header.metadata, run.state, run.state.progress, zone.length);
  if (online(run)) run.options.online.rewriting(zone.at, zone.length);
  RL_TRY(write_run_header(run));
  RL_TRY(rewrite_zone(run, zone.data, zone.at, nullptr));
  RL_TRY(commit_progress_past(run, zone));
  ++run.report.steps;
  return {};
}

// Finishes a step that was interrupted. Checksums: the blocks whose hashes still match are
// rewritten, the others hold new ciphertext already. Data shift: the old data is still where it was
// (the hotzone's destination is never its source), so the step runs again.
Status recover_hotzone(ReencryptRun& run) {
  const uint64_t length = *run.state.hotzone_length;
  const uint64_t at = run.state.hotzone_begin(length);
  const std::string& resilience = run.state.resilience.area_type;
  if (resilience != "checksum" && resilience != "datashift") {
    return Error(Errc::unsupported, run.image.name() + ": the interrupted step had no resilience data (\"" +
                                        resilience + "\"), so [" + std::to_string(at) + ", " +
                                        std::to_string(at + length) + ") of the data cannot be recovered");
  }
  ReadZone zone{at, length, {}, {}, {}};
  RL_TRY(read_zone(run, zone));
  if (online(run)) run.options.online.rewriting(at, length);
  run.report.bytes_read += length;
  std::vector<bool> still_old;
  if (with_checksums(run)) {
    RL_ASSIGN(still_old, blocks_still_old(run.image, run.state.resilience, zone.hashes));
  }
  RL_TRY(rewrite_zone(run, zone.data, at, with_checksums(run) ? &still_old : nullptr));
  run.state.hotzone_length.reset();
  RL_TRY(commit_progress_past(run, zone));
  run.report.recovered_hotzone = true;
  return {};
}

// Whether the hotzone [at, at + length) has anything to move: on RBD, not when neither its data
// nor its destination held anything, which then read as zeros under either key. Online, the data
// path may write anywhere after the allocation map was read, so every hotzone is read (its holes
// still stay holes).
bool has_work(const ReencryptRun& run, uint64_t at, uint64_t length) {
  if (!run.image.peers_read_holes_as_zeros() || online(run)) return true;
  return overlaps(run.allocated, source_offset(run, at), source_offset(run, at) + length) ||
         (run.state.encrypting() && overlaps(run.allocated, dest_offset(run, at), dest_offset(run, at) + length));
}

// The hotzones still to do, in order: forward from the progress, or, for an encryption, back from
// where the encrypted part begins, down to the moved segment, which goes last. Hotzones of a data
// shift are no longer than the shift, so that none overwrites its own data.
Result<std::vector<std::pair<uint64_t, uint64_t>>> plan_zones(const ReencryptRun& run) {
  const uint64_t block = block_size(run);
  uint64_t hotzone_max = std::max(block, run.options.hotzone_bytes / block * block);
  if (with_checksums(run)) {
    RL_ASSIGN(const uint64_t capacity, checksum_capacity(run.state.resilience));
    hotzone_max = std::min(hotzone_max, capacity / block * block);
    if (hotzone_max == 0) {
      return Error(Errc::bad_header, run.image.name() + ": the reencryption's checksum area holds no block's hash");
    }
  }
  std::vector<std::pair<uint64_t, uint64_t>> zones;
  const auto add = [&](uint64_t at, uint64_t length) {
    if (length > 0 && has_work(run, at, length)) zones.emplace_back(at, length);
  };
  if (run.state.encrypting()) {
    const uint64_t moved = run.state.moved->size.value_or(0);
    hotzone_max = std::min(hotzone_max, *run.state.resilience.shift_size);
    for (uint64_t low = run.state.data_size - run.state.progress; low > 0;) {
      const uint64_t at = low > moved ? std::max(moved, low - std::min(low, hotzone_max)) : 0;
      add(at, low - at);
      low = at;
    }
    return zones;
  }
  for (uint64_t at = run.state.progress; at < run.state.data_size; at += hotzone_max) {
    add(at, std::min(hotzone_max, run.state.data_size - at));
  }
  return zones;
}

Status run_steps(ReencryptRun& run) {
  RL_ASSIGN(const auto zones, plan_zones(run));
  const auto rewrite = [&](ReadZone& zone) -> Status {
    if (run.options.stop_requested && run.options.stop_requested()) return stopped(run);
    RL_TRY(step(run, zone));
    if (run.options.progress) run.options.progress(run.state.progress, run.state.data_size);
    return {};
  };
  RL_TRY(pipeline_zones<ReadZone>(
      zones, [&](ReadZone& zone) { return read_zone(run, zone); }, rewrite));
  run.state.progress = run.state.data_size;
  return {};
}

// The end: the header keeps only the new keyslots, digest and segment; then the old keyslots' key
// material, the fence's and the resilience area are wiped. A crash between the two leaves a header
// without the old key and material nothing refers to, which the next keyslot added may overwrite.
Status finish(ReencryptRun& run) {
  Luks2Metadata& md = run.header.metadata;
  const int new_digest = run.state.new_digest;
  std::vector<int> removed;
  if (run.state.old_digest >= 0) removed = md.digests.at(run.state.old_digest).keyslots;
  auto& new_slots = md.digests.at(new_digest).keyslots;
  std::copy_if(new_slots.begin(), new_slots.end(), std::back_inserter(removed),
               [&](int id) { return is_librbd_fence(md, new_digest, id); });
  std::erase_if(new_slots, [&](int id) { return is_librbd_fence(md, new_digest, id); });
  std::vector<std::pair<uint64_t, uint64_t>> wipe;
  for (const int id : removed) {
    const Luks2Keyslot& ks = md.keyslots.at(id);
    wipe.emplace_back(ks.area_offset, ks.area_size);
    md.keyslots.erase(id);
    luks2_tokens_drop_keyslot(md, id);
  }
  const Luks2ReencryptKeyslot area = run.state.resilience;
  if (const auto digest = luks2_keyslot_digest(md, run.state.keyslot)) md.digests.erase(*digest);
  md.reencrypt_keyslots.clear();
  if (run.state.old_digest >= 0) md.digests.erase(run.state.old_digest);
  Luks2Segment segment = run.state.next;
  segment.flags.clear();
  segment.json = nlohmann::ordered_json::object();
  md.segments = {{0, segment}};
  md.digests.at(new_digest).segments = {0};
  set_luks2_reencrypt_requirement(md, false);
  RL_TRY(write_run_header(run));
  for (const auto& [offset, size] : wipe) RL_TRY(wipe_key_material(run.image, offset, size));
  if (area.area_size > 0) RL_TRY(run.image.write_zeroes(area.area_offset, area.area_size));
  return run.image.flush();
}

}  // namespace

Status write_run_header(ReencryptRun& run) { return write_luks2_header(run.image, run.header); }

Status unlock_recorded_run(ReencryptRun& run, const std::vector<std::span<const uint8_t>>& passphrases) {
  Luks2Metadata& md = run.header.metadata;
  const auto unlock = [&](int digest_id, SecureBuffer& out) -> Status {
    for (const auto& passphrase : passphrases) {
      for (const int id : md.digests.at(digest_id).keyslots) {
        if (is_librbd_fence(md, digest_id, id)) continue;
        RL_ASSIGN(auto key, try_open_luks2_keyslot(run.image, md, id, passphrase));
        if (key) {
          out = std::move(*key);
          return {};
        }
      }
    }
    return Error(Errc::bad_key, run.image.name() + ": no passphrase given opens a keyslot of the " +
                                    (digest_id == run.state.old_digest ? "old" : "new") +
                                    " volume key, which finishing the " + run.state.resilience.mode + " needs");
  };
  if (run.state.old_digest >= 0) RL_TRY(unlock(run.state.old_digest, run.keys.old_key));
  RL_TRY(unlock(run.state.new_digest, run.keys.new_key));
  if (!luks2_reencrypt_digest_matches(md, run.keys.old_key.span(), run.keys.new_key.span())) {
    return Error(Errc::bad_header, run.image.name() +
                                       ": the reencryption state does not match its digest (edited or damaged "
                                       "metadata); refusing to touch the data");
  }
  if (!run.keys.old_key.empty()) {
    RL_ASSIGN(run.keys.old_cipher, make_cipher(run.state.previous.encryption, run.keys.old_key.span()));
  }
  RL_ASSIGN(run.keys.new_cipher, make_cipher(run.state.next.encryption, run.keys.new_key.span()));
  for (const int id : md.digests.at(run.state.new_digest).keyslots) {
    if (!is_librbd_fence(md, run.state.new_digest, id)) run.report.new_keyslots.push_back(id);
  }
  std::sort(run.report.new_keyslots.begin(), run.report.new_keyslots.end());
  return {};
}

Status prepare_data_moves(ReencryptRun& run) {
  if (!run.prepared) {
    if (run.options.check_alone) RL_TRY(run.options.check_alone());
    if (run.image.peers_read_holes_as_zeros()) {
      RL_ASSIGN(const uint64_t raw_size, run.image.size());
      RL_ASSIGN(run.allocated, run.image.allocated_extents(0, raw_size));
    }
    run.prepared = true;
  }
  return run.state.hotzone_length ? recover_hotzone(run) : Status{};
}

Status make_keyslot_room(ReencryptRun& run, uint32_t key_bytes) {
  Luks2Metadata& md = run.header.metadata;
  const uint64_t needed = luks2_keyslot_area_size(key_bytes, 4000);
  if (luks2_find_free_area(md, run.header.hdr_size, needed)) return {};
  const auto it = md.reencrypt_keyslots.find(run.state.keyslot);
  if (it == md.reencrypt_keyslots.end()) {
    return Error(Errc::no_space, run.image.name() + ": no room in the keyslots area for another keyslot");
  }
  Luks2ReencryptKeyslot& area = it->second;
  const uint64_t block = std::max<uint64_t>(area.sector_size, 4096);
  if (run.state.hotzone_length || area.area_size < needed + block) {
    return Error(Errc::no_space, run.image.name() + ": no room in the keyslots area for another keyslot");
  }
  area.area_size -= needed;
  run.state.resilience = area;
  return assign_luks2_reencrypt_digest(md, run.keys.old_key.span(), run.keys.new_key.span(),
                                       run.options.minimal_digest_cost);
}

Status run_to_end(ReencryptRun& run) {
  run.report.data_bytes = run.state.data_size;
  if (online(run)) RL_TRY(run.options.online.begin(run.keys.new_cipher, run.keys.new_key.span(), run.state.progress));
  RL_TRY(prepare_data_moves(run));
  RL_TRY(run_steps(run));
  return finish(run);
}

}  // namespace rbdluks
