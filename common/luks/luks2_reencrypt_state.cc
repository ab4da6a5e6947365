// A forward reencryption's segments: reading the progress back from them, and writing them for
// each step in the order and with the digest assignments of cryptsetup 2.6.
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

Error bad(const std::string& what) { return Error(Errc::bad_header, "reencryption metadata: " + what); }
Error unsupported(const std::string& what) { return Error(Errc::unsupported, "reencryption: " + what); }

bool has_flag(const Luks2Segment& segment, const std::string& flag) {
  return std::find(segment.flags.begin(), segment.flags.end(), flag) != segment.flags.end();
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

// The segments of a step as (segment, assigned to old digest, assigned to new digest), in the
// order of cryptsetup's assignments, which decides the order of the digests' "segments" arrays.
struct Layout {
  std::vector<Luks2Segment> segments;
  std::vector<int> old_ids, new_ids;
};

Layout step_layout(const Luks2ReencryptState& state, uint64_t progress, uint64_t hotzone_length) {
  const uint64_t data_size = state.data_size;
  Layout out;
  const uint64_t rest = progress + hotzone_length;
  int hot_id = -1;
  int new_id = -1;
  int old_id = -1;
  if (progress > 0) {
    // Once nothing old is left, the new segment reaches the end the way the final one will.
    const bool whole = rest >= data_size && hotzone_length == 0;
    new_id = static_cast<int>(out.segments.size());
    out.segments.push_back(part_of(state.next, 0, whole ? std::nullopt : std::optional(progress)));
  }
  if (hotzone_length > 0) {
    hot_id = static_cast<int>(out.segments.size());
    Luks2Segment hot = part_of(state.next, progress, hotzone_length);
    hot.flags = {kHotFlag};
    out.segments.push_back(std::move(hot));
  }
  if (rest < data_size) {
    old_id = static_cast<int>(out.segments.size());
    out.segments.push_back(part_of(state.previous, rest, std::nullopt));
  }
  const int previous_id = static_cast<int>(out.segments.size());
  out.segments.push_back(state.previous);
  const int next_id = static_cast<int>(out.segments.size());
  out.segments.push_back(state.next);

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

bool same_place(const Luks2Segment& a, const Luks2Segment& b) {
  return a.offset == b.offset && a.size == b.size && a.iv_tweak == b.iv_tweak && a.encryption == b.encryption &&
         a.sector_size == b.sector_size && a.unknown_type == b.unknown_type && a.flags == b.flags;
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
  }
  if (std::find(names.begin(), names.end(), kRequirement) == names.end()) {
    return bad(std::string("the requirement ") + kRequirement + " is missing");
  }
  if (metadata.reencrypt_keyslots.size() != 1) return bad("there is no reencrypt keyslot");
  Luks2ReencryptState state;
  state.keyslot = metadata.reencrypt_keyslots.begin()->first;
  state.resilience = metadata.reencrypt_keyslots.begin()->second;
  if (state.resilience.mode != "reencrypt") {
    return unsupported("mode \"" + state.resilience.mode + "\" is not resumed, only \"reencrypt\"");
  }
  if (state.resilience.direction != "forward") {
    return unsupported("direction \"" + state.resilience.direction + "\" is not resumed, only \"forward\"");
  }
  if (state.resilience.area_type != "checksum" && state.resilience.area_type != "none") {
    return unsupported("resilience \"" + state.resilience.area_type + "\" is not resumed, only checksum and none");
  }

  const Luks2Segment* previous = nullptr;
  const Luks2Segment* next = nullptr;
  int previous_id = -1;
  int next_id = -1;
  for (const auto& [id, segment] : metadata.segments) {
    if (has_flag(segment, "backup-previous")) previous = &segment, previous_id = id;
    if (has_flag(segment, "backup-final")) next = &segment, next_id = id;
  }
  if (previous == nullptr || next == nullptr) return bad("a backup segment is missing");
  if (previous->unknown_type || next->unknown_type) return bad("a backup segment of reencryption is not \"crypt\"");
  if (previous->offset != next->offset || previous->iv_tweak != 0 || next->iv_tweak != 0 ||
      previous->size != next->size) {
    return bad("the old and the new segment do not cover the same data");
  }
  const auto old_digest = luks2_segment_digest(metadata, previous_id);
  const auto new_digest = luks2_segment_digest(metadata, next_id);
  if (!old_digest || !new_digest || *old_digest == *new_digest) return bad("the backup segments' digests are wrong");
  state.previous = *previous;
  state.previous.flags = {"backup-previous"};
  state.next = *next;
  state.next.flags = {"backup-final"};
  state.old_digest = *old_digest;
  state.new_digest = *new_digest;
  const uint64_t data_size =
      data_segment_size(raw_size, previous->offset, std::max(previous->sector_size, next->sector_size), previous->size);
  state.data_size = data_size;

  // The progress is where the new key's data ends: the end of the segment before the hotzone or
  // before the old data, and all of it once no old segment is left.
  for (const auto& [id, segment] : metadata.segments) {
    if (has_flag(segment, kHotFlag)) {
      state.progress = segment.offset - previous->offset;
      state.hotzone_length = segment.size.value_or(0);
      break;
    }
    if (has_flag(segment, "backup-previous") || has_flag(segment, "backup-final")) {
      state.progress = data_size;  // no old segment: everything is new
      break;
    }
    if (luks2_segment_digest(metadata, id) == state.old_digest) {
      state.progress = segment.offset - previous->offset;
      break;
    }
  }
  // Anything but exactly the segments of that step (a hand-edited or foreign header) is refused:
  // resuming from a misread progress would rewrite sectors under the wrong key.
  const Layout expected = step_layout(state, state.progress, state.hotzone_length.value_or(0));
  bool same = expected.segments.size() == metadata.segments.size();
  for (size_t i = 0; same && i < expected.segments.size(); ++i) {
    same = same_place(expected.segments[i], metadata.segments.at(static_cast<int>(i)));
  }
  if (!same || state.progress > data_size || state.progress % state.next.sector_size != 0 ||
      state.hotzone_length.value_or(0) > data_size - state.progress) {
    return bad("the segments are not those of a forward reencryption step");
  }
  return state;
}

void set_luks2_reencrypt_segments(Luks2Metadata& metadata, const Luks2ReencryptState& state, uint64_t progress,
                                  uint64_t hotzone_length) {
  Layout layout = step_layout(state, progress, hotzone_length);
  metadata.segments.clear();
  for (size_t i = 0; i < layout.segments.size(); ++i) metadata.segments[static_cast<int>(i)] = layout.segments[i];
  metadata.digests.at(state.old_digest).segments = std::move(layout.old_ids);
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
