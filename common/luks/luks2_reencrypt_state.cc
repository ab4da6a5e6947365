// A reencryption's segments: reading the progress back from them, and writing them for each step in
// the order and with the digest assignments of cryptsetup 2.6.
#include "luks2_reencrypt_state.h"

#include <algorithm>
#include <string>
#include <vector>

#include "luks2_keyslot.h"
#include "sector_codec.h"

namespace rbdluks {
namespace {

constexpr const char* kRequirement = "online-reencrypt-v2";
constexpr const char* kHotFlag = "in-reencryption";
constexpr const char* kPrevious = "backup-previous";
constexpr const char* kFinal = "backup-final";
constexpr const char* kMoved = "backup-moved-segment";

Error bad(const std::string& what) { return Error(Errc::bad_header, "reencryption metadata: " + what); }
Error unsupported(const std::string& what) { return Error(Errc::unsupported, "reencryption: " + what); }

bool has_flag(const Luks2Segment& segment, const std::string& flag) {
  return std::find(segment.flags.begin(), segment.flags.end(), flag) != segment.flags.end();
}

bool is_backup(const Luks2Segment& segment) {
  return has_flag(segment, kPrevious) || has_flag(segment, kFinal) || has_flag(segment, kMoved);
}

std::vector<std::string> mandatory_requirements(const Luks2Metadata& metadata) {
  std::vector<std::string> names;
  const auto& config = metadata.config.json;
  if (!config.contains("requirements") || !config["requirements"].contains("mandatory")) return names;
  for (const auto& name : config["requirements"]["mandatory"]) {
    if (name.is_string()) names.push_back(name.get<std::string>());
  }
  return names;
}

// The part [begin, begin + length) of a backup segment's data, as a segment of its own; length
// nullopt: to the end, as "dynamic" when the backup is.
Luks2Segment part_of(const Luks2Segment& backup, uint64_t begin, std::optional<uint64_t> length) {
  Luks2Segment part = backup;
  part.json = nlohmann::ordered_json::object();  // written anew, in cryptsetup's member order
  part.flags.clear();
  part.offset = backup.offset + begin;
  part.iv_tweak = backup.iv_tweak + begin / 512;
  if (length) {
    part.size = *length;
  } else if (backup.size) {
    part.size = *backup.size - begin;
  } else {
    part.size = std::nullopt;
  }
  return part;
}

// A step's regular segments, and which of them the old and the new digest cover, in the order of
// cryptsetup's assignments (which decides the order of the digests' "segments" arrays); the backup
// segments follow.
struct Layout {
  std::vector<Luks2Segment> segments;
  std::vector<int> old_ids, new_ids;

  int add(Luks2Segment segment) {
    segments.push_back(std::move(segment));
    return static_cast<int>(segments.size()) - 1;
  }
};

Layout reencrypt_layout(const Luks2ReencryptState& state, uint64_t progress, uint64_t hotzone_length) {
  Layout out;
  const uint64_t rest = progress + hotzone_length;
  int hot_id = -1;
  int new_id = -1;
  int old_id = -1;
  if (progress > 0) {
    // Once nothing old is left, the new segment reaches the end the way the final one will.
    const bool whole = rest >= state.data_size && hotzone_length == 0;
    new_id = out.add(part_of(state.next, 0, whole ? std::nullopt : std::optional(progress)));
  }
  if (hotzone_length > 0) {
    Luks2Segment hot = part_of(state.next, progress, hotzone_length);
    hot.flags = {kHotFlag};
    hot_id = out.add(std::move(hot));
  }
  if (rest < state.data_size) old_id = out.add(part_of(state.previous, rest, std::nullopt));
  const int previous_id = out.add(state.previous);
  const int next_id = out.add(state.next);
  if (hot_id >= 0) {
    out.new_ids.push_back(hot_id);
    out.old_ids.push_back(hot_id);
  }
  if (new_id >= 0) out.new_ids.push_back(new_id);
  if (old_id >= 0) out.old_ids.push_back(old_id);
  out.old_ids.push_back(previous_id);
  out.new_ids.push_back(next_id);
  return out;
}

Layout encrypt_layout(const Luks2ReencryptState& state, uint64_t progress, uint64_t hotzone_length) {
  Layout out;
  const uint64_t moved = state.moved->size.value_or(0);
  const uint64_t low = state.data_size - progress;  // where the encrypted part begins
  const uint64_t hot = low - hotzone_length;
  if (hot >= moved && moved > 0) out.add(part_of(*state.moved, 0, moved));
  if (hot > moved) out.add(part_of(state.previous, moved, hot - moved));
  int hot_id = -1;
  int done_id = -1;
  if (hotzone_length > 0) {
    Luks2Segment segment = part_of(state.next, hot, hotzone_length);
    segment.flags = {kHotFlag};
    hot_id = out.add(std::move(segment));
  }
  if (progress > 0) {
    const bool whole = low == 0 && hotzone_length == 0;
    done_id = out.add(part_of(state.next, low, whole ? std::nullopt : std::optional(progress)));
  }
  out.add(state.previous);
  const int next_id = out.add(state.next);
  out.add(*state.moved);
  out.new_ids.push_back(next_id);
  if (hot_id >= 0) out.new_ids.push_back(hot_id);
  if (done_id >= 0) out.new_ids.push_back(done_id);
  return out;
}

Layout step_layout(const Luks2ReencryptState& state, uint64_t progress, uint64_t hotzone_length) {
  return state.encrypting() ? encrypt_layout(state, progress, hotzone_length)
                            : reencrypt_layout(state, progress, hotzone_length);
}

bool same_place(const Luks2Segment& a, const Luks2Segment& b) {
  if (a.unknown_type != b.unknown_type || a.offset != b.offset || a.size != b.size || a.flags != b.flags) return false;
  return a.unknown_type || (a.iv_tweak == b.iv_tweak && a.encryption == b.encryption && a.sector_size == b.sector_size);
}

Status check_mode(const Luks2ReencryptKeyslot& slot) {
  const bool reencrypt = slot.mode == "reencrypt" && slot.direction == "forward" &&
                         (slot.area_type == "checksum" || slot.area_type == "none");
  const bool encrypt = slot.mode == "encrypt" && slot.direction == "backward" && slot.area_type == "datashift";
  if (reencrypt || encrypt) return {};
  return unsupported("mode " + slot.mode + ", direction " + slot.direction + ", resilience " + slot.area_type +
                     " is not resumed (only reencrypt forward with checksum or none, and encrypt backward with "
                     "datashift); finish it with cryptsetup");
}

// The progress and the interrupted hotzone, from the segments before the backups.
void read_progress(const Luks2Metadata& metadata, Luks2ReencryptState& state) {
  for (const auto& [id, segment] : metadata.segments) {
    if (is_backup(segment)) break;
    const uint64_t size = segment.size.value_or(state.data_size);
    if (has_flag(segment, kHotFlag)) {
      state.hotzone_length = size;
      if (!state.encrypting()) {
        state.progress = segment.offset - state.previous.offset;
        return;
      }
    } else if (state.encrypting() && !segment.unknown_type) {
      state.progress = segment.size ? size : state.data_size;
    } else if (!state.encrypting() && luks2_segment_digest(metadata, id) == state.old_digest) {
      state.progress = segment.offset - state.previous.offset;
      return;
    }
  }
  if (!state.encrypting()) state.progress = state.data_size;  // no old segment: everything is new
}

}  // namespace

bool luks2_reencrypt_in_progress(const Luks2Metadata& metadata) {
  if (!metadata.reencrypt_keyslots.empty()) return true;
  const auto names = mandatory_requirements(metadata);
  return std::any_of(names.begin(), names.end(),
                     [](const std::string& n) { return n.starts_with("online-reencrypt"); });
}

Result<Luks2ReencryptState> luks2_reencrypt_state(const Luks2Metadata& metadata, uint64_t raw_size) {
  const auto names = mandatory_requirements(metadata);
  for (const auto& name : names) {
    if (name.starts_with("online-reencrypt") && name != kRequirement) {
      return unsupported("the header requires \"" + name.substr(0, 64) + "\"; only " + kRequirement +
                         " is resumed (finish it with the cryptsetup that began it)");
    }
    if (!name.starts_with("online-reencrypt")) {
      return unsupported("the header also requires \"" + name.substr(0, 64) + "\", which rbd-luks does not implement");
    }
  }
  if (std::find(names.begin(), names.end(), kRequirement) == names.end()) {
    return bad(std::string("the requirement ") + kRequirement + " is missing");
  }
  if (metadata.reencrypt_keyslots.size() != 1) return bad("there is no reencrypt keyslot");
  Luks2ReencryptState state;
  state.keyslot = metadata.reencrypt_keyslots.begin()->first;
  state.resilience = metadata.reencrypt_keyslots.begin()->second;
  RL_TRY(check_mode(state.resilience));

  std::map<std::string, std::pair<int, const Luks2Segment*>> backups;
  for (const auto& [id, segment] : metadata.segments) {
    for (const char* flag : {kPrevious, kFinal, kMoved}) {
      if (has_flag(segment, flag) && !backups.emplace(flag, std::pair(id, &segment)).second) {
        return bad(std::string("two segments are flagged ") + flag);
      }
    }
  }
  if (!backups.contains(kPrevious) || !backups.contains(kFinal)) return bad("a backup segment is missing");
  const auto [previous_id, previous] = backups.at(kPrevious);
  const auto [next_id, next] = backups.at(kFinal);
  if (next->unknown_type) return bad("the new segment is not \"crypt\"");
  const auto new_digest = luks2_segment_digest(metadata, next_id);
  if (!new_digest) return bad("the new segment has no digest");
  state.previous = *previous;
  state.next = *next;
  state.new_digest = *new_digest;
  if (state.encrypting()) {
    // The plaintext (linear, at 0), the volume to be (crypt at the shift), and the moved first bytes.
    if (!backups.contains(kMoved)) return bad("the moved segment of an encryption is missing");
    state.moved = *backups.at(kMoved).second;
    const uint64_t shift = state.resilience.shift_size.value_or(0);
    if (previous->unknown_type != "linear" || previous->offset != 0 || !previous->size ||
        state.moved->unknown_type != "linear" || state.moved->size != std::optional(shift) || next->offset != shift ||
        next->iv_tweak != 0 || state.moved->offset != *previous->size + shift ||
        raw_size < state.moved->offset + shift) {
      return bad("the segments are not those of an encryption with a data shift");
    }
    state.data_size = *previous->size;
  } else {
    if (previous->unknown_type) return bad("the old segment is not \"crypt\"");
    if (previous->offset != next->offset || previous->iv_tweak != 0 || next->iv_tweak != 0 ||
        previous->size != next->size) {
      return bad("the old and the new segment do not cover the same data");
    }
    const auto old_digest = luks2_segment_digest(metadata, previous_id);
    if (!old_digest || *old_digest == state.new_digest) return bad("the old segment's digest is wrong");
    state.old_digest = *old_digest;
    state.data_size = data_segment_size(raw_size, previous->offset, std::max(previous->sector_size, next->sector_size),
                                        previous->size);
  }
  read_progress(metadata, state);

  // Anything but exactly the regular segments of that step (a hand-edited or foreign header) is
  // refused: resuming from a misread progress would rewrite sectors under the wrong key.
  const uint64_t hot = state.hotzone_length.value_or(0);
  if (state.progress > state.data_size || hot > state.data_size - state.progress ||
      state.progress % state.next.sector_size != 0) {
    return bad("the progress is past the end of the data");
  }
  const Layout expected = step_layout(state, state.progress, hot);
  size_t regular = 0;
  bool same = true;
  for (const auto& [id, segment] : metadata.segments) {
    if (is_backup(segment)) continue;
    same = same && regular < expected.segments.size() && same_place(expected.segments[regular], segment) &&
           id == static_cast<int>(regular);
    ++regular;
  }
  const size_t expected_regular = expected.segments.size() - (state.encrypting() ? 3 : 2);
  if (!same || regular != expected_regular) return bad("the segments are not those of any step of this run");
  state.previous.flags = {kPrevious};
  state.next.flags = {kFinal};
  if (state.moved) state.moved->flags = {kMoved};
  return state;
}

void set_luks2_reencrypt_segments(Luks2Metadata& metadata, const Luks2ReencryptState& state, uint64_t progress,
                                  uint64_t hotzone_length) {
  Layout layout = step_layout(state, progress, hotzone_length);
  metadata.segments.clear();
  for (size_t i = 0; i < layout.segments.size(); ++i) metadata.segments[static_cast<int>(i)] = layout.segments[i];
  if (state.old_digest >= 0) metadata.digests.at(state.old_digest).segments = std::move(layout.old_ids);
  metadata.digests.at(state.new_digest).segments = std::move(layout.new_ids);
}

void set_luks2_reencrypt_requirement(Luks2Metadata& metadata, bool required) {
  auto& config = metadata.config.json;
  auto names = mandatory_requirements(metadata);
  std::erase_if(names, [](const std::string& n) { return n.starts_with("online-reencrypt"); });
  if (required) names.emplace_back(kRequirement);
  if (names.empty()) {
    if (config.contains("requirements")) {
      config["requirements"].erase("mandatory");
      if (config["requirements"].empty()) config.erase("requirements");
    }
    return;
  }
  config["requirements"]["mandatory"] = names;
}

}  // namespace rbdluks
