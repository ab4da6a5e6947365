// In-place decryption: the marker, the copy of the header past the end, the steps, and the end.
#include "decryption.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <nlohmann/json.hpp>

#include "alignment.h"
#include "chunked_io.h"
#include "cipher_spec.h"
#include "encryption.h"
#include "luks_volume.h"
#include "sector_codec.h"
#include "window_image.h"

namespace rbdluks {
namespace {

struct Marker {
  uint64_t original_size = 0;   // of the image before it grew
  uint64_t data_offset = 0;     // D: where the ciphertext begins, and how far it moves down
  uint64_t data_size = 0;       // P: the bytes of plaintext, and the image's size at the end
  uint64_t header_copy_at = 0;  // where the copy of the first D bytes is
  // The copy is complete and the header, from here on, the copy's: the one at the start may be
  // erased in part. Until then it is whole, and a rerun copies it again.
  bool moved = false;
  uint64_t progress = 0;  // [0, progress) holds plaintext
};

Result<std::optional<Marker>> read_marker(RawImage& image) {
  RL_ASSIGN(const auto text, image.get_metadata(kDecryptionMarkerKey));
  if (!text) return std::optional<Marker>();
  const auto json = nlohmann::json::parse(*text, nullptr, false);
  const auto number = [&](const char* name) { return json.contains(name) && json[name].is_number_unsigned(); };
  if (!json.is_object() || !number("original_size") || !number("data_offset") || !number("data_size") ||
      !number("header_copy_at") || !number("progress") || !json.contains("moved") || !json["moved"].is_boolean()) {
    return Error(Errc::failure,
                 image.name() + ": the image metadata " + kDecryptionMarkerKey + " is damaged: " + text->substr(0, 80));
  }
  Marker marker{
      json["original_size"].get<uint64_t>(),  json["data_offset"].get<uint64_t>(), json["data_size"].get<uint64_t>(),
      json["header_copy_at"].get<uint64_t>(), json["moved"].get<bool>(),           json["progress"].get<uint64_t>()};
  if (marker.data_offset == 0 || marker.progress > marker.data_size ||
      marker.header_copy_at < marker.data_offset + marker.data_size) {
    return Error(Errc::failure, image.name() + ": the image metadata " + kDecryptionMarkerKey +
                                    " does not describe a decryption: " + text->substr(0, 80));
  }
  return std::optional<Marker>(marker);
}

Status write_marker(RawImage& image, const Marker& marker) {
  const nlohmann::json json = {{"original_size", marker.original_size},
                               {"data_offset", marker.data_offset},
                               {"data_size", marker.data_size},
                               {"header_copy_at", marker.header_copy_at},
                               {"moved", marker.moved},
                               {"progress", marker.progress}};
  return image.set_metadata(kDecryptionMarkerKey, json.dump());
}

// The progress as the image's own data records it, in a block past the copy of the header, written
// before the marker: a snapshot rollback takes it back together with the data it describes, which
// the marker cannot (RBD keeps image metadata per image, not per snapshot).
constexpr uint64_t kStampSize = 4096;

uint64_t stamp_offset(const Marker& marker) { return marker.header_copy_at + marker.data_offset; }
uint64_t grown_size(const Marker& marker) { return stamp_offset(marker) + kStampSize; }

Status write_stamp(RawImage& image, const Marker& marker, uint64_t progress) {
  const std::string text = nlohmann::json{
      {"decryption", "rbd-luks"},
      {"header_copy_at", marker.header_copy_at},
      {"progress", progress}}.dump();
  std::vector<uint8_t> block(kStampSize, 0);
  std::copy(text.begin(), text.end(), block.begin());
  RL_TRY(image.write(stamp_offset(marker), block));
  return image.flush();
}

// The stamp's progress; nullopt when the image holds none of this run (never written, erased at the
// end, or another state of the image).
Result<std::optional<uint64_t>> read_stamp(RawImage& image, const Marker& marker) {
  RL_ASSIGN(const uint64_t size, image.size());
  if (size < grown_size(marker)) return std::optional<uint64_t>();
  std::vector<uint8_t> block(kStampSize);
  RL_TRY(image.read(stamp_offset(marker), block));
  const auto end = std::find(block.begin(), block.end(), uint8_t{0});
  const auto json = nlohmann::json::parse(block.begin(), end, nullptr, false);
  if (!json.is_object() || json.value("decryption", "") != "rbd-luks" ||
      !json.value("header_copy_at", nlohmann::json()).is_number_unsigned() ||
      json["header_copy_at"].get<uint64_t>() != marker.header_copy_at ||
      !json.value("progress", nlohmann::json()).is_number_unsigned() ||
      json["progress"].get<uint64_t>() > marker.data_size) {
    return std::optional<uint64_t>();
  }
  return std::optional<uint64_t>(json["progress"].get<uint64_t>());
}

// The volume at the start of the image, checked before anything changes: one rbd-luks opens, not
// in the middle of another run, and opened by the passphrase.
Result<Marker> plan(RawImage& image, std::span<const uint8_t> passphrase) {
  RL_ASSIGN(const auto volume, load_luks(image));
  RL_TRY(volume->supported());  // says so when a reencryption or an encryption holds the header
  RL_ASSIGN(const bool encrypting, encryption_started(image));
  if (encrypting) {
    return Error(Errc::usage, image.name() +
                                  ": an encryption in place has not finished; finish it first (the same "
                                  "`rbd-luks encrypt` again)");
  }
  if (auto key = volume->open(passphrase); !key) return std::move(key).error();
  const VolumeLayout& layout = volume->layout();
  RL_ASSIGN(const uint64_t size, image.size());
  Marker marker;
  marker.original_size = size;
  marker.data_offset = layout.data_offset;
  marker.data_size = data_segment_size(size, layout.data_offset, layout.sector_size, layout.data_size);
  marker.header_copy_at = round_up(std::max(size, marker.data_offset + marker.data_size), 4096);
  if (marker.data_offset == 0) return Error(Errc::unsupported, image.name() + ": the volume's data offset is 0");
  return marker;
}

// Copies the first D bytes past the end of the image grown for them, flushed. Chunks of zeros stay
// unwritten where the grown part is new; a copy made again goes over the last one whole.
Status copy_header(RawImage& image, const Marker& marker, const ReencryptOptions& options) {
  RL_ASSIGN(const uint64_t size, image.size());
  const uint64_t grown = grown_size(marker);
  const bool fresh = size != grown;
  if (fresh) {
    if (size != marker.original_size) {
      return Error(Errc::failure, image.name() + ": " + std::to_string(size) + " bytes, neither the " +
                                      std::to_string(marker.original_size) + " of the volume nor the " +
                                      std::to_string(grown) + " of a decryption under way");
    }
    RL_TRY(image.resize(grown));
  }
  const auto copy = [&](uint64_t begin, uint64_t end) -> Status {
    std::vector<uint8_t> chunk(end - begin);
    RL_TRY(image.read(begin, chunk));
    if (!is_zero(chunk)) return image.write(marker.header_copy_at + begin, chunk);
    return fresh ? Status{} : image.write_zeroes(marker.header_copy_at + begin, chunk.size());
  };
  RL_TRY(for_each_chunk(marker.data_offset, options.io_bytes, options.threads, copy));
  return image.flush();
}

// What the steps work with.
struct Decryption {
  Decryption(RawImage& run_image, const ReencryptOptions& run_options, const Marker& run_marker)
      : image(run_image), options(run_options), marker(run_marker) {}

  RawImage& image;
  const ReencryptOptions& options;
  Marker marker;
  std::unique_ptr<XtsCipher> cipher;
  uint32_t sector_size = 512;
  std::vector<Extent> allocated;  // raw extents that may hold data, read before the first step
  std::atomic<uint64_t> bytes_read{0}, bytes_written{0};
};

// Writes the plaintext at `at` (a plaintext offset, which is also where it goes): runs of 4 KiB
// blocks with data are written, runs of zero blocks become holes where the image may hold
// something. Smaller holes are not worth a call of their own (a file system's block is 4 KiB).
Status write_plaintext(Decryption& run, std::span<const uint8_t> plain, uint64_t at) {
  const uint64_t block = std::max<uint64_t>(run.sector_size, 4096);
  const auto apply = [&](bool zero, uint64_t begin, uint64_t end) -> Status {
    if (begin == end) return {};
    if (zero) {
      if (!overlaps(run.allocated, at + begin, at + end)) return {};
      return run.image.write_zeroes(at + begin, end - begin);
    }
    run.bytes_written += end - begin;
    return run.image.write(at + begin, plain.subspan(begin, end - begin));
  };
  uint64_t run_begin = 0;
  bool current = is_zero(plain.subspan(0, std::min<uint64_t>(block, plain.size())));
  for (uint64_t b = block; b < plain.size(); b += block) {
    const bool zero = is_zero(plain.subspan(b, std::min<uint64_t>(block, plain.size() - b)));
    if (zero == current) continue;
    RL_TRY(apply(current, run_begin, b));
    run_begin = b;
    current = zero;
  }
  return apply(current, run_begin, plain.size());
}

// Moves the recorded progress to `at`: every step before it is done.
Status record_progress(Decryption& run, uint64_t at) {
  RL_TRY(write_stamp(run.image, run.marker, at));
  run.marker.progress = at;
  return write_marker(run.image, run.marker);
}

// Whether [at, at + length) has anything to move: data to read, or data at the destination that
// must become zeros.
bool has_work(const Decryption& run, uint64_t at, uint64_t length) {
  const uint64_t from = run.marker.data_offset + at;
  return overlaps(run.allocated, from, from + length) || overlaps(run.allocated, at, at + length);
}

// A hotzone's plaintext, read ahead: zeros where its source holds nothing.
struct PlainZone {
  uint64_t at = 0;
  uint64_t length = 0;
  std::vector<uint8_t> plain;
};

// Reads and decrypts the hotzone's ciphertext, from D + at. Touches nothing of the image but that,
// so it may run beside the step before, which writes below D + at.
Status read_zone(Decryption& run, PlainZone& zone) {
  zone.plain.resize(zone.length);
  const uint64_t from = run.marker.data_offset + zone.at;
  const auto chunk = [&](uint64_t begin, uint64_t end) -> Status {
    const auto part = std::span(zone.plain).subspan(begin, end - begin);
    if (!overlaps(run.allocated, from + begin, from + end)) {
      std::fill(part.begin(), part.end(), uint8_t{0});
      return Status{};
    }
    RL_TRY(run.image.read(from + begin, part));
    run.bytes_read += part.size();
    decrypt_sectors(*run.cipher, part, run.sector_size, zone.at + begin);
    return Status{};
  };
  return for_each_chunk(zone.length, run.options.io_bytes, run.options.threads, chunk);
}

// One step: the hotzone's plaintext written at `at`, flushed, then the progress recorded past it.
// When steps with nothing to move were passed over, the progress is recorded past them first: a
// rerun must not do them again once this step has written over their source.
Status step(Decryption& run, PlainZone& zone) {
  if (run.marker.progress < zone.at) RL_TRY(record_progress(run, zone.at));
  const auto chunk = [&](uint64_t begin, uint64_t end) {
    return write_plaintext(run, std::span(zone.plain).subspan(begin, end - begin), zone.at + begin);
  };
  RL_TRY(for_each_chunk(zone.length, run.options.io_bytes, run.options.threads, chunk));
  RL_TRY(run.image.flush());
  return record_progress(run, zone.at + zone.length);
}

// The key from the copy of the header, and the layout it must agree with.
Status unlock_copy(Decryption& run, std::span<const uint8_t> passphrase) {
  WindowImage copy(run.image, run.marker.header_copy_at, run.marker.data_offset);
  RL_ASSIGN(const auto volume, load_luks(copy));
  const VolumeLayout& layout = volume->layout();
  if (layout.data_offset != run.marker.data_offset) {
    return Error(Errc::bad_header, run.image.name() + ": the header copy at " +
                                       std::to_string(run.marker.header_copy_at) +
                                       " does not match the decryption's marker; refusing to touch the data");
  }
  RL_ASSIGN(const UnlockedKey key, volume->open(passphrase));
  RL_ASSIGN(run.cipher, make_cipher(layout.cipher, key.volume_key.span()));
  run.sector_size = layout.sector_size;
  return {};
}

// From the marker's progress to the end of the data, passing over hotzones with nothing to move;
// stop_requested is asked between steps. The next hotzone is read while a step writes its own.
Status run_steps(Decryption& run) {
  const Marker& marker = run.marker;
  const uint64_t hotzone = std::max<uint64_t>(
      run.sector_size, round_down(std::min(run.options.hotzone_bytes, marker.data_offset), run.sector_size));
  std::vector<std::pair<uint64_t, uint64_t>> zones;
  for (uint64_t at = marker.progress; at < marker.data_size; at += hotzone) {
    const uint64_t length = std::min(hotzone, marker.data_size - at);
    if (has_work(run, at, length)) zones.emplace_back(at, length);
  }
  const auto write = [&](PlainZone& zone) -> Status {
    if (run.options.stop_requested && run.options.stop_requested()) {
      return Error(Errc::failure, run.image.name() + ": decryption stopped with " + std::to_string(marker.progress) +
                                      " of " + std::to_string(marker.data_size) +
                                      " bytes done; run the same command again to finish it");
    }
    RL_TRY(step(run, zone));
    if (run.options.progress) run.options.progress(marker.progress, marker.data_size);
    return {};
  };
  RL_TRY(pipeline_zones<PlainZone>(
      zones, [&](PlainZone& zone) { return read_zone(run, zone); }, write));
  return marker.progress < marker.data_size ? record_progress(run, marker.data_size) : Status{};
}

// Overwrites whatever [offset, offset + length) holds with zeros, flushed, then makes it a hole: a
// hole alone frees the blocks below without overwriting them, and these held key material.
Status erase(RawImage& image, uint64_t offset, uint64_t length, const ReencryptOptions& options) {
  RL_ASSIGN(const auto extents, image.allocated_extents(offset, length));
  const std::vector<uint8_t> zeros(std::min<uint64_t>(options.io_bytes, length));
  for (const Extent& extent : extents) {
    const uint64_t end = std::min(extent.end(), offset + length);
    for (uint64_t at = std::max(extent.offset, offset); at < end;) {
      const uint64_t n = std::min<uint64_t>(zeros.size(), end - at);
      RL_TRY(image.write(at, std::span(zeros).first(n)));
      at += n;
    }
  }
  RL_TRY(image.flush());
  RL_TRY(image.write_zeroes(offset, length));
  return image.flush();
}

// The volume's header at the start, once its copy is safe and recorded as the header: its magic
// first, so that no reader takes what is left for a volume.
Status erase_header(RawImage& image, const Marker& marker, const ReencryptOptions& options) {
  const uint64_t first = std::min<uint64_t>(4096, marker.data_offset);
  RL_TRY(erase(image, 0, first, options));
  return erase(image, first, marker.data_offset - first, options);
}

// After the last step: the ciphertext left past the data and the header copy are erased and cut
// off, then the volume's metadata goes, then the marker.
Status cut_back(RawImage& image, const Marker& marker, const std::vector<std::string>& volume_keys,
                const ReencryptOptions& options) {
  RL_ASSIGN(const uint64_t size, image.size());
  if (size > marker.data_size) {
    RL_TRY(erase(image, marker.data_size, size - marker.data_size, options));
    RL_TRY(image.resize(marker.data_size));
  }
  for (const std::string& key : volume_keys) RL_TRY(image.remove_metadata(key));
  RL_TRY(image.remove_metadata(kDecryptionMarkerKey));
  return {};
}

}  // namespace

Result<bool> decryption_started(RawImage& image) {
  RL_ASSIGN(const auto marker, read_marker(image));
  return marker.has_value();
}

Status refuse_recorded_decryption(RawImage& image) {
  RL_ASSIGN(const bool decrypting, decryption_started(image));
  if (!decrypting) return {};
  return Error(Errc::usage, image.name() +
                                ": a decryption in place has not finished; finish it first (the same "
                                "`rbd-luks decrypt` again)");
}

Result<ReencryptReport> decrypt_volume(RawImage& image, const std::function<Result<SecureBuffer>()>& passphrase,
                                       const ReencryptOptions& options, const std::vector<std::string>& volume_keys) {
  ReencryptReport report;
  RL_ASSIGN(std::optional<Marker> recorded, read_marker(image));
  report.resumed = recorded.has_value();
  if (recorded && recorded->moved) {
    // The data's own record of the progress is the truth; the marker's may be ahead of it after a
    // rollback, or behind it after a crash between the two.
    RL_ASSIGN(const auto stamped, read_stamp(image, *recorded));
    if (stamped) {
      recorded->progress = *stamped;
    } else if (recorded->progress != recorded->data_size) {
      return Error(Errc::failure, image.name() +
                                      ": the image's data holds no record of the decryption's progress, which "
                                      "the image metadata " +
                                      kDecryptionMarkerKey +
                                      " says it moved; if the image was rolled back to a snapshot taken before the "
                                      "decryption, remove that key (rbd image-meta remove) and run decrypt again");
    }
  }
  // Asked for once (it may come from standard input), and only when the run needs a key.
  std::optional<SecureBuffer> secret;
  if (!recorded || recorded->progress < recorded->data_size) {
    RL_ASSIGN(secret, passphrase());
    if (options.check_alone) RL_TRY(options.check_alone());
  }
  if (!recorded) {
    RL_ASSIGN(recorded, plan(image, secret->span()));
    RL_TRY(write_marker(image, *recorded));
  }
  Decryption run(image, options, *recorded);
  report.data_bytes = run.marker.data_size;
  if (run.marker.progress < run.marker.data_size) {
    // The header at the start is whole until `moved`, and may have changed since an earlier try
    // copied it (cryptsetup can open it): it is copied (again), and the copy must open.
    if (!run.marker.moved) RL_TRY(copy_header(image, run.marker, options));
    RL_TRY(unlock_copy(run, secret->span()));
    if (!run.marker.moved) {
      RL_TRY(write_stamp(image, run.marker, 0));
      run.marker.moved = true;
      RL_TRY(write_marker(image, run.marker));
    }
    // No reader finds a volume at the start from here on (the data becomes half plain), while the
    // copy holds the keys. Erased again after a crash before the first step was recorded, which the
    // rerun then does again.
    if (run.marker.progress == 0) RL_TRY(erase_header(image, run.marker, options));
    RL_ASSIGN(run.allocated, image.allocated_extents(0, run.marker.header_copy_at));
    RL_TRY(run_steps(run));
  }
  RL_TRY(cut_back(image, run.marker, volume_keys, options));
  report.bytes_read = run.bytes_read;
  report.bytes_written = run.bytes_written;
  return report;
}

}  // namespace rbdluks
