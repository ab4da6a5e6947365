// In-place encryption: the marker, growing the image, copying the first bytes away, the header of
// step 0, and cutting the image back at the end; the steps are reencrypt_run's.
#include "encryption.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "chunked_io.h"
#include "cipher_spec.h"
#include "decryption.h"
#include "librbd_fence.h"
#include "luks2_header.h"
#include "luks2_keyslot.h"
#include "luks2_reencrypt_digest.h"
#include "luks2_reencrypt_state.h"
#include "random.h"
#include "reencrypt_run.h"
#include "sector_codec.h"

namespace rbdluks {
namespace {

constexpr const char* kMarkerKey = "rbd-luks.encrypt";
constexpr uint64_t kHdrSize = 16 << 10;
constexpr uint64_t kDefaultShift = 16 << 20;  // the data offset of `create`, librbd and cryptsetup
constexpr uint64_t kShiftAreaSize = 4096;     // cryptsetup's datashift keyslot area

struct Marker {
  uint64_t plaintext_size = 0;
  uint64_t shift = 0;
  bool moved = false;  // the first `shift` bytes are at the end of the grown image
};

Result<std::optional<Marker>> read_marker(RawImage& image) {
  RL_ASSIGN(const auto text, image.get_metadata(kMarkerKey));
  if (!text) return std::optional<Marker>();
  const auto json = nlohmann::json::parse(*text, nullptr, false);
  if (!json.is_object() || !json.contains("plaintext_size") || !json.contains("shift") || !json.contains("moved") ||
      !json["plaintext_size"].is_number_unsigned() || !json["shift"].is_number_unsigned() ||
      !json["moved"].is_boolean()) {
    return Error(Errc::failure,
                 image.name() + ": the image metadata " + kMarkerKey + " is damaged: " + text->substr(0, 80));
  }
  return std::optional<Marker>(
      Marker{json["plaintext_size"].get<uint64_t>(), json["shift"].get<uint64_t>(), json["moved"].get<bool>()});
}

Status write_marker(RawImage& image, const Marker& marker) {
  const nlohmann::json json = {
      {"plaintext_size", marker.plaintext_size}, {"shift", marker.shift}, {"moved", marker.moved}};
  return image.set_metadata(kMarkerKey, json.dump());
}

// Copies the first marker.shift bytes to the end of the image grown by twice that, flushed. On
// backends that read holes as zeros, blocks of zeros stay unwritten (the end is new, so a hole).
Status move_first_bytes(RawImage& image, const Marker& marker, const ReencryptOptions& options) {
  const uint64_t to = marker.plaintext_size + marker.shift;
  const bool thin = image.peers_read_holes_as_zeros();
  const auto copy = [&](uint64_t begin, uint64_t end) -> Status {
    std::vector<uint8_t> chunk(end - begin);
    RL_TRY(image.read(begin, chunk));
    if (thin && is_zero(chunk)) return Status{};
    return image.write(to + begin, chunk);
  };
  RL_TRY(for_each_chunk(marker.shift, options.io_bytes, options.threads, copy));
  return image.flush();
}

// Where the plaintext was, the volume to be, and where the first bytes wait.
void set_layout(Luks2ReencryptState& state, const Marker& marker, const FormatOptions& format) {
  state.previous = Luks2Segment{};
  state.previous.unknown_type = "linear";
  state.previous.offset = 0;
  state.previous.size = marker.plaintext_size;
  state.previous.flags = {"backup-previous"};
  state.next = Luks2Segment{};
  state.next.offset = marker.shift;
  state.next.size = std::nullopt;
  state.next.encryption = format.cipher;
  state.next.sector_size = format.sector_size;
  state.next.flags = {"backup-final"};
  Luks2Segment moved;
  moved.unknown_type = "linear";
  moved.offset = marker.plaintext_size + marker.shift;
  moved.size = marker.shift;
  moved.flags = {"backup-moved-segment"};
  state.moved = moved;
  state.data_size = marker.plaintext_size;
  state.progress = 0;
}

// Writes the header of step 0 over the first bytes, which wait at the end by now: first the area
// is zeroed (no plaintext stays in the keyslots area), then the keyslot, then the header.
Status begin(ReencryptRun& run, std::span<const uint8_t> passphrase, const FormatOptions& format,
             const Marker& marker) {
  RL_TRY(run.image.write_zeroes(0, marker.shift));
  const uint64_t keyslots_size = std::min<uint64_t>(marker.shift - 2 * kHdrSize, kLuks2MaxKeyslotsSize);
  RL_ASSIGN(run.header, new_luks2_header(kHdrSize, keyslots_size, format.uuid.value_or("")));
  Luks2Metadata& md = run.header.metadata;

  run.keys.new_key = SecureBuffer(format.key_bytes);
  RL_TRY(fill_random(run.keys.new_key.span()));
  RL_ASSIGN(run.keys.new_cipher, make_cipher(format.cipher, run.keys.new_key.span()));
  RL_ASSIGN(KdfParams kdf, choose_kdf_params(format.kdf, format.key_bytes));
  kdf.hash = format.kdf.hash;
  RL_TRY(add_luks2_keyslot(run.header, run.image, 0, run.keys.new_key.span(), passphrase, kdf, format.cipher));
  const bool minimal_cost = format.kdf.force_iterations.has_value();
  RL_ASSIGN(Luks2Digest digest, new_luks2_digest(run.keys.new_key.span(), minimal_cost));
  digest.keyslots = {0};
  md.digests[0] = std::move(digest);
  run.report.new_keyslots = {0};

  set_layout(run.state, marker, format);
  run.state.new_digest = 0;
  if (auto fenced = add_librbd_fence(run); !fenced && !fenced.error().is(Errc::no_space)) return fenced;
  Luks2ReencryptKeyslot slot;
  slot.mode = "encrypt";
  slot.direction = "backward";
  slot.area_type = "datashift";
  RL_ASSIGN(slot.area_offset, luks2_find_free_area(md, run.header.hdr_size, kShiftAreaSize));
  slot.area_size = kShiftAreaSize;
  slot.shift_size = marker.shift;
  RL_ASSIGN(run.state.keyslot, luks2_free_keyslot_id(md));
  md.reencrypt_keyslots[run.state.keyslot] = slot;
  run.state.resilience = slot;
  set_luks2_reencrypt_segments(md, run.state, 0, 0);
  set_luks2_reencrypt_requirement(md, true);
  RL_TRY(assign_luks2_reencrypt_digest(md, {}, run.keys.new_key.span(), minimal_cost));
  return write_run_header(run);
}

// After the end: the copy of the first bytes goes, with the space it took, and the marker.
Status cut_back(RawImage& image, const Marker& marker) {
  RL_ASSIGN(const uint64_t size, image.size());
  const uint64_t final_size = marker.plaintext_size + marker.shift;
  if (size > final_size) {
    RL_TRY(image.write_zeroes(final_size, size - final_size));  // not left behind on a file system
    RL_TRY(image.resize(final_size));
  }
  RL_TRY(image.remove_metadata(kMarkerKey));
  return {};
}

Status check_plaintext_image(RawImage& image, const FormatOptions& format, uint64_t size, uint64_t shift) {
  if (format.version != 2) return Error(Errc::usage, "encryption in place makes LUKS2 volumes only");
  if (shift % 4096 != 0 || shift < 2 * kHdrSize + luks2_keyslot_area_size(format.key_bytes, 4000) + kShiftAreaSize) {
    return Error(Errc::usage, "data offset " + std::to_string(shift) + " is too small or not a multiple of 4096");
  }
  if (size == 0 || size % format.sector_size != 0) {
    return Error(Errc::usage, image.name() + ": its size, " + std::to_string(size) +
                                  " bytes, is not a whole number of " + std::to_string(format.sector_size) +
                                  "-byte sectors");
  }
  if (size < shift) {
    return Error(Errc::usage, image.name() + ": " + std::to_string(size) + " bytes are fewer than the data offset (" +
                                  std::to_string(shift) + "); encrypt a copy instead (create + import)");
  }
  return {};
}

// Resumes the encryption the header records: its key, the interrupted step, the fence.
Status resume(ReencryptRun& run, std::span<const uint8_t> passphrase, uint64_t raw_size) {
  RL_ASSIGN(run.state, luks2_reencrypt_state(run.header.metadata, raw_size));
  if (!run.state.encrypting()) {
    return Error(Errc::usage,
                 run.image.name() + ": a reencryption is under way; run `rbd-luks reencrypt` again to finish it");
  }
  RL_TRY(unlock_recorded_run(run, {passphrase}));
  run.report.resumed = true;
  RL_TRY(prepare_data_moves(run));  // before the fence may take room from the area
  if (auto fenced = add_librbd_fence(run); !fenced && !fenced.error().is(Errc::no_space)) return fenced;
  return write_run_header(run);
}

// Starts (or starts again, after a crash before the header) from the marker: grows the image,
// copies the first bytes away, writes the header of step 0. marker is set when it was absent.
Status start(ReencryptRun& run, std::span<const uint8_t> passphrase, const FormatOptions& format,
             std::optional<Marker>& marker, uint64_t raw_size) {
  RawImage& image = run.image;
  if (!marker) {
    const uint64_t shift = format.data_offset.value_or(kDefaultShift);
    RL_TRY(check_plaintext_image(image, format, raw_size, shift));
    marker = Marker{raw_size, shift, false};
    RL_TRY(write_marker(image, *marker));
  } else {
    run.report.resumed = true;
  }
  const uint64_t grown = marker->plaintext_size + 2 * marker->shift;
  if (raw_size != grown) {
    if (raw_size != marker->plaintext_size) {
      return Error(Errc::failure, image.name() + ": " + std::to_string(raw_size) + " bytes, neither the " +
                                      std::to_string(marker->plaintext_size) + " of the plaintext nor the " +
                                      std::to_string(grown) + " of an encryption under way");
    }
    RL_TRY(image.resize(grown));
  }
  if (!marker->moved) {
    RL_TRY(move_first_bytes(image, *marker, run.options));
    marker->moved = true;
    RL_TRY(write_marker(image, *marker));
  }
  return begin(run, passphrase, format, *marker);
}

}  // namespace

Result<bool> encryption_started(RawImage& image) {
  RL_ASSIGN(const auto marker, read_marker(image));
  if (marker) return true;
  auto loaded = read_luks2_header(image);
  return loaded && luks2_reencrypt_in_progress(loaded->header.metadata);
}

Result<ReencryptReport> encrypt_luks2(RawImage& image, std::span<const uint8_t> passphrase, const FormatOptions& format,
                                      const ReencryptOptions& options) {
  RL_TRY(refuse_recorded_decryption(image));
  RL_ASSIGN(std::optional<Marker> marker, read_marker(image));
  RL_ASSIGN(const uint64_t raw_size, image.size());
  auto loaded = read_luks2_header(image);
  ReencryptRun run(image, options);
  if (loaded && luks2_reencrypt_in_progress(loaded->header.metadata)) {
    run.header = std::move(loaded->header);
    RL_TRY(resume(run, passphrase, raw_size));
  } else if (loaded || holds_luks_magic(image)) {
    if (!marker || !marker->moved) {
      return Error(Errc::usage, image.name() + " holds a LUKS header already; nothing to encrypt");
    }
    if (loaded) {  // the end was written, the image not yet cut back
      RL_TRY(cut_back(image, *marker));
      run.report.resumed = true;
      return std::move(run.report);
    }
    RL_TRY(start(run, passphrase, format, marker, raw_size));  // the header never got written
  } else {
    RL_TRY(start(run, passphrase, format, marker, raw_size));
  }
  RL_TRY(run_to_end(run));
  if (marker) RL_TRY(cut_back(image, *marker));
  return std::move(run.report);
}

}  // namespace rbdluks
