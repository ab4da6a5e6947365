// The reencryption driver: start (new key, keyslots, the header's reencryption state), resume
// (keys, the interrupted step's recovery), the steps, and the end (old keyslots and state gone).
#include "reencryption.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "cipher_spec.h"
#include "extent.h"
#include "hotzone_checksums.h"
#include "keyslot_material.h"
#include "luks2_header.h"
#include "luks2_keyslot.h"
#include "luks2_reencrypt_digest.h"
#include "luks2_reencrypt_state.h"
#include "luks_volume.h"
#include "random.h"
#include "sector_codec.h"
#include "secure_buffer.h"
#include "xts_cipher.h"

namespace rbdluks {
namespace {

constexpr uint64_t kBlock = 4096;  // checksum block: a filesystem block, and within one RADOS write
constexpr const char* kChecksumHash = "sha256";

// Runs fn on consecutive chunks [begin, end) of [0, length) on up to `threads` threads.
Status for_each_chunk(uint64_t length, uint64_t chunk, unsigned threads,
                      const std::function<Status(uint64_t, uint64_t)>& fn) {
  const uint64_t count = (length + chunk - 1) / chunk;
  std::atomic<uint64_t> next{0};
  std::mutex mutex;
  std::optional<Error> first_error;
  const auto work = [&] {
    for (uint64_t i = next++; i < count; i = next++) {
      Status done = fn(i * chunk, std::min(length, (i + 1) * chunk));
      if (!done) {
        const std::lock_guard lock(mutex);
        if (!first_error) first_error = std::move(done).error();
        next = count;  // the others stop at their next chunk
      }
    }
  };
  std::vector<std::thread> helpers;
  try {
    for (uint64_t t = 1; t < std::min<uint64_t>(threads, count); ++t) helpers.emplace_back(work);
  } catch (const std::system_error&) {
    // Out of threads: those that started, and this one, do all the chunks.
  }
  work();
  for (auto& helper : helpers) helper.join();
  if (first_error) return *first_error;
  return {};
}

struct Keys {
  SecureBuffer old_key, new_key;
  std::unique_ptr<XtsCipher> old_cipher, new_cipher;
};

// What a step works with: the image, the state as the header has it, the keys.
struct Run {
  RawImage& image;
  Luks2Header header;
  Luks2ReencryptState state;
  Keys keys;
  const ReencryptOptions& options;
  ReencryptReport report;
};

Error stopped(const Run& run) {
  return Error(Errc::failure, run.image.name() + ": reencryption stopped at " + std::to_string(run.state.progress) +
                                  " of " + std::to_string(run.state.data_size) +
                                  " bytes; run the same command again to finish it");
}

uint64_t data_offset(const Run& run) { return run.state.previous.offset; }

Status write_header(Run& run) { return write_luks2_header(run.image, run.header); }

// Rewrites the sectors of hotzone (at data offset `at`) from the old key to the new one and writes
// them back, then flushes. All-zero sectors (holes) are neither changed nor written: a write of
// zeros would turn a hole in an RBD object, which librbd's native layer reads as zeros on BlueStore,
// into written zeros, which it decrypts to noise. With still_old, the blocks it says hold new
// ciphertext already are left too.
Status rewrite_hotzone(Run& run, std::span<uint8_t> hotzone, uint64_t at, const std::vector<bool>* still_old) {
  const uint32_t sector = run.state.next.sector_size;
  const uint64_t block = run.state.resilience.sector_size != 0 ? run.state.resilience.sector_size : kBlock;
  std::atomic<uint64_t> written{0};
  const auto rewrite_chunk = [&](uint64_t begin, uint64_t end) -> Status {
    uint64_t run_begin = begin;
    const auto rewrite_run = [&](uint64_t run_end) -> Status {
      if (run_end == run_begin) return {};
      const auto part = hotzone.subspan(run_begin, run_end - run_begin);
      decrypt_sectors(*run.keys.old_cipher, part, sector, at + run_begin);
      encrypt_sectors(*run.keys.new_cipher, part, sector, at + run_begin);
      written += part.size();
      return run.image.write(data_offset(run) + at + run_begin, part);
    };
    for (uint64_t s = begin; s < end; s += sector) {
      if (is_zero(hotzone.subspan(s, sector)) || (still_old != nullptr && !(*still_old)[s / block])) {
        RL_TRY(rewrite_run(s));
        run_begin = s + sector;
      }
    }
    return rewrite_run(end);
  };
  RL_TRY(for_each_chunk(hotzone.size(), run.options.io_bytes, run.options.threads, rewrite_chunk));
  run.report.bytes_written += written;
  // Durable before the header says these sectors are under the new key.
  return run.image.flush();
}

// A hotzone read ahead: its old ciphertext and, for checksum resilience, its blocks' hashes.
struct ReadZone {
  uint64_t at = 0;
  uint64_t length = 0;
  std::vector<uint8_t> data;
  std::vector<uint8_t> hashes;
};

// Reads zone.length bytes at zone.at, and hashes each chunk's blocks on the thread that read it.
// Touches nothing of run but the image, so it may run beside a step.
Status read_zone(Run& run, ReadZone& zone) {
  zone.data.resize(zone.length);
  const bool checksums = run.state.resilience.area_type == "checksum";
  if (checksums) {
    RL_ASSIGN(const size_t hashes_size, checksums_size(run.state.resilience, zone.length));
    zone.hashes.resize(hashes_size);
  }
  const auto read_chunk = [&](uint64_t begin, uint64_t end) -> Status {
    const auto part = std::span(zone.data).subspan(begin, end - begin);
    RL_TRY(run.image.read(data_offset(run) + zone.at + begin, part));
    if (!checksums) return Status{};
    // Chunks are whole blocks (io_bytes and hotzones are multiples of the block), so each chunk's
    // hashes have a place of their own.
    const uint64_t first = begin * zone.hashes.size() / zone.length;
    const uint64_t count = part.size() * zone.hashes.size() / zone.length;
    return hash_blocks(run.state.resilience, part, std::span(zone.hashes).subspan(first, count));
  };
  return for_each_chunk(zone.length, run.options.io_bytes, run.options.threads, read_chunk);
}

// One step: the zone's data moves to the new key. Its checksums go to the area only now: until the
// previous step's last header is written, the area protects that step.
Status step(Run& run, ReadZone& zone) {
  run.report.bytes_read += zone.length;
  if (!zone.hashes.empty()) {
    RL_TRY(store_hotzone_checksums(run.image, run.state.resilience, zone.hashes));
    RL_TRY(run.image.flush());  // before the header that points at them
  }
  set_luks2_reencrypt_segments(run.header.metadata, run.state, zone.at, zone.length);
  RL_TRY(write_header(run));
  RL_TRY(rewrite_hotzone(run, zone.data, zone.at, nullptr));
  run.state.progress = zone.at + zone.length;
  run.state.hotzone_length.reset();
  set_luks2_reencrypt_segments(run.header.metadata, run.state, run.state.progress, 0);
  RL_TRY(write_header(run));
  ++run.report.steps;
  return {};
}

// Finishes a step that was interrupted: the blocks whose checksums still match are rewritten, the
// others hold new ciphertext already.
Status recover_hotzone(Run& run) {
  const uint64_t at = run.state.progress;
  const uint64_t length = *run.state.hotzone_length;
  if (run.state.resilience.area_type != "checksum") {
    return Error(Errc::unsupported, run.image.name() + ": the interrupted step had no resilience data (\"" +
                                        run.state.resilience.area_type + "\"), so [" + std::to_string(at) + ", " +
                                        std::to_string(at + length) + ") of the data cannot be recovered");
  }
  ReadZone zone{at, length, {}, {}};
  RL_TRY(read_zone(run, zone));
  run.report.bytes_read += length;
  RL_ASSIGN(const std::vector<bool> still_old, blocks_still_old(run.image, run.state.resilience, zone.hashes));
  RL_TRY(rewrite_hotzone(run, zone.data, at, &still_old));
  run.state.progress = at + length;
  run.state.hotzone_length.reset();
  set_luks2_reencrypt_segments(run.header.metadata, run.state, run.state.progress, 0);
  RL_TRY(write_header(run));
  run.report.recovered_hotzone = true;
  return {};
}

// Where the data may be: the allocated extents on backends whose peers read holes as zeros, else
// everything; from `from` to the end, in data offsets, widened to whole blocks.
Result<std::vector<Extent>> data_to_rewrite(Run& run, uint64_t from, uint64_t block) {
  const uint64_t end = run.state.data_size;
  std::vector<Extent> out;
  if (from >= end) return out;
  if (!run.image.peers_read_holes_as_zeros()) {
    out.push_back({from, end - from});
    return out;
  }
  RL_ASSIGN(const auto raw, run.image.allocated_extents(data_offset(run) + from, end - from));
  for (const Extent& e : plaintext_extents(raw, data_offset(run), static_cast<uint32_t>(block), from, end - from)) {
    append_extent(out, e.offset, std::min(end, e.end()));
  }
  return out;
}

// The steps, each reading the next hotzone ahead (on threads of its own) while it rewrites its own:
// the reads and the writes of the cluster overlap, as in a copy.
Status run_steps(Run& run) {
  const uint64_t block = run.state.resilience.sector_size != 0 ? run.state.resilience.sector_size : kBlock;
  uint64_t hotzone_max = std::max(block, run.options.hotzone_bytes / block * block);
  if (run.state.resilience.area_type == "checksum") {
    RL_ASSIGN(const uint64_t capacity, checksum_capacity(run.state.resilience));
    hotzone_max = std::min(hotzone_max, capacity / block * block);
  }
  RL_ASSIGN(const std::vector<Extent> extents, data_to_rewrite(run, run.state.progress, block));
  std::vector<std::pair<uint64_t, uint64_t>> zones;
  for (const Extent& extent : extents) {
    for (uint64_t at = extent.offset; at < extent.end(); at += hotzone_max) {
      zones.emplace_back(at, std::min(hotzone_max, extent.end() - at));
    }
  }
  std::array<ReadZone, 2> buffers;
  const auto start_read = [&](size_t i) {
    ReadZone& zone = buffers[i % 2];
    zone.at = zones[i].first;
    zone.length = zones[i].second;
    const auto read = [&run, &zone] { return read_zone(run, zone); };
    try {
      return std::async(std::launch::async, read);
    } catch (const std::system_error&) {
      return std::async(std::launch::deferred, read);  // out of threads: read when the step needs it
    }
  };
  std::future<Status> next;
  if (!zones.empty()) next = start_read(0);
  for (size_t i = 0; i < zones.size(); ++i) {
    Status read = next.get();
    if (i + 1 < zones.size()) next = start_read(i + 1);
    // A read ahead still running must end before its buffer goes, whatever happens here.
    const auto wait_ahead = [&] {
      if (next.valid()) next.wait();
    };
    if (!read) {
      wait_ahead();
      return read;
    }
    if (run.options.stop_requested && run.options.stop_requested()) {
      wait_ahead();
      return stopped(run);
    }
    if (Status done = step(run, buffers[i % 2]); !done) {
      wait_ahead();
      return done;
    }
    if (run.options.progress) run.options.progress(run.state.progress, run.state.data_size);
  }
  run.state.progress = run.state.data_size;
  return {};
}

// librbd 16's native encryption opens a volume in reencryption with the new key alone (libcryptsetup's
// crypt_volume_key_get heeds no requirement) and would read the data not yet rewritten as noise. It
// asks for the key into a 64-byte buffer, and libcryptsetup sizes the key by the first keyslot of
// the new key's digest: a keyslot listed first there that holds a larger key makes that call fail,
// so librbd refuses to open the image. cryptsetup's reencryption opens keyslots one by one and
// never tries one of priority "ignore", so it resumes and finishes all the same. The fence holds
// random bytes under a random passphrase; finish() removes it.
constexpr uint32_t kFenceKeyBytes = 65;  // the least over 64: its area is the smallest such (256 KiB)

bool is_fence(const Luks2Metadata& md, int digest, int keyslot) {
  const auto it = md.keyslots.find(keyslot);
  return it != md.keyslots.end() && luks2_keyslot_digest(md, keyslot) == digest &&
         it->second.priority == Luks2Priority::ignore && it->second.key_size == kFenceKeyBytes;
}

Status add_fence(Run& run) {
  Luks2Metadata& md = run.header.metadata;
  auto& slots = md.digests.at(run.state.new_digest).keyslots;
  if (!slots.empty() && is_fence(md, run.state.new_digest, slots.front())) {
    run.report.librbd_fenced = true;
    return {};
  }
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

// The end: the header keeps only the new keyslots, digest and segment; then the old keyslots' key
// material and the checksums are wiped. A crash between the two leaves a header without the old key
// and material nothing refers to, which the next keyslot added may overwrite.
Status finish(Run& run) {
  Luks2Metadata& md = run.header.metadata;
  std::vector<std::pair<uint64_t, uint64_t>> wipe;
  std::vector<int> removed = md.digests.at(run.state.old_digest).keyslots;
  for (const int id : md.digests.at(run.state.new_digest).keyslots) {
    if (is_fence(md, run.state.new_digest, id)) removed.push_back(id);
  }
  std::erase_if(md.digests.at(run.state.new_digest).keyslots,
                [&](int id) { return is_fence(md, run.state.new_digest, id); });
  for (const int id : removed) {
    const Luks2Keyslot& ks = md.keyslots.at(id);
    wipe.emplace_back(ks.area_offset, ks.area_size);
    md.keyslots.erase(id);
    for (auto& [token_id, token] : md.tokens.items()) {
      if (token.contains("keyslots") && token["keyslots"].is_array()) {
        auto& names = token["keyslots"];
        names.erase(std::remove(names.begin(), names.end(), std::to_string(id)), names.end());
      }
    }
  }
  const Luks2ReencryptKeyslot area = run.state.resilience;
  if (const auto digest = luks2_keyslot_digest(md, run.state.keyslot)) md.digests.erase(*digest);
  md.reencrypt_keyslots.clear();
  md.digests.erase(run.state.old_digest);
  Luks2Segment segment = run.state.next;
  segment.flags.clear();
  segment.json = nlohmann::ordered_json::object();
  md.segments = {{0, segment}};
  md.digests.at(run.state.new_digest).segments = {0};
  set_luks2_reencrypt_requirement(md, false);
  RL_TRY(write_header(run));
  for (const auto& [offset, size] : wipe) RL_TRY(wipe_key_material(run.image, offset, size));
  if (area.area_size > 0) RL_TRY(run.image.write_zeroes(area.area_offset, area.area_size));
  return run.image.flush();
}

Result<std::unique_ptr<XtsCipher>> cipher_for(const std::string& spec, std::span<const uint8_t> key) {
  RL_TRY(check_cipher_key_size(spec, key.size()));
  return make_xts_cipher(key);
}

// The largest free part of the keyslots area, for the checksums (cryptsetup: LUKS2_find_area_max_gap).
std::pair<uint64_t, uint64_t> largest_free_area(const Luks2Header& header) {
  const uint64_t begin = luks2_keyslots_area_offset(header);
  const uint64_t end = begin + header.metadata.config.keyslots_size;
  std::vector<std::pair<uint64_t, uint64_t>> used;
  for (const auto& [id, ks] : header.metadata.keyslots)
    used.emplace_back(ks.area_offset, ks.area_offset + ks.area_size);
  std::sort(used.begin(), used.end());
  std::pair<uint64_t, uint64_t> best{begin, 0};
  uint64_t at = begin;
  for (const auto& [b, e] : used) {
    if (b > at && b - at > best.second) best = {at, b - at};
    at = std::max(at, (e + kBlock - 1) / kBlock * kBlock);
  }
  if (end > at && end - at > best.second) best = {at, end - at};
  return best;
}

std::string list(const std::vector<int>& ids) {
  std::string out;
  for (const int id : ids) out += (out.empty() ? "" : ", ") + std::to_string(id);
  return out;
}

// Starts a reencryption: the new key, its keyslots (one for each old one a passphrase opens, with
// the same KDF cost and priority), and the state of step 0, written in one header.
Status begin(Run& run, const std::vector<std::span<const uint8_t>>& passphrases, uint64_t raw_size) {
  Luks2Metadata& md = run.header.metadata;
  if (!md.unsupported.empty()) return Error(Errc::unsupported, run.image.name() + ": " + md.unsupported.front());
  if (md.segments.size() != 1) return Error(Errc::unsupported, run.image.name() + ": more than one data segment");
  const Luks2Segment old_segment = md.segments.at(0);
  const auto old_digest = luks2_segment_digest(md, 0);
  if (!old_digest) return Error(Errc::bad_header, run.image.name() + ": the data segment has no digest");

  // Which keyslot each passphrase opens, and the old key.
  std::map<int, size_t> opened;  // keyslot -> passphrase
  std::vector<int> bound = md.digests.at(*old_digest).keyslots;
  std::sort(bound.begin(), bound.end());
  for (size_t p = 0; p < passphrases.size(); ++p) {
    for (const int id : bound) {
      if (opened.contains(id)) continue;
      auto key = open_luks2_keyslot(run.image, md, id, passphrases[p]);
      if (!key) {
        if (!key.error().is(Errc::bad_key)) return std::move(key).error();
        continue;
      }
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
    return Error(Errc::usage, run.image.name() + ": no passphrase given opens keyslot" +
                                  (unopened.size() > 1 ? "s " : " ") + list(unopened) +
                                  ", which would stop working; give its passphrase too, or drop it with --force");
  }
  run.report.dropped_keyslots = unopened;

  Luks2Segment new_segment = old_segment;
  new_segment.json = nlohmann::ordered_json::object();
  new_segment.encryption = run.options.cipher.value_or(old_segment.encryption);
  const uint32_t new_key_bytes = run.options.key_bytes.value_or(static_cast<uint32_t>(run.keys.old_key.size()));
  run.keys.new_key = SecureBuffer(new_key_bytes);
  RL_TRY(fill_random(run.keys.new_key.span()));
  RL_ASSIGN(run.keys.old_cipher, cipher_for(old_segment.encryption, run.keys.old_key.span()));
  RL_ASSIGN(run.keys.new_cipher, cipher_for(new_segment.encryption, run.keys.new_key.span()));

  // The new keyslots, in free parts of the keyslots area, flushed before the header lists them.
  RL_ASSIGN(Luks2Digest new_digest, new_luks2_digest(run.keys.new_key.span(), run.options.minimal_digest_cost));
  for (const auto& [old_id, passphrase] : opened) {
    RL_ASSIGN(const int id, luks2_free_keyslot_id(md));
    const Luks2Keyslot old_slot = md.keyslots.at(old_id);
    RL_TRY(add_luks2_keyslot(run.header, run.image, id, run.keys.new_key.span(), passphrases[passphrase], old_slot.kdf,
                             new_segment.encryption));
    md.keyslots.at(id).priority = old_slot.priority;
    for (auto& [token_id, token] : md.tokens.items()) {
      if (!token.contains("keyslots") || !token["keyslots"].is_array()) continue;
      auto& names = token["keyslots"];
      if (std::find(names.begin(), names.end(), std::to_string(old_id)) != names.end()) {
        names.push_back(std::to_string(id));
      }
    }
    new_digest.keyslots.push_back(id);
    run.report.new_keyslots.push_back(id);
  }
  RL_ASSIGN(const int new_digest_id, luks2_free_digest_id(md));
  md.digests[new_digest_id] = std::move(new_digest);
  run.state.new_digest = new_digest_id;
  if (auto fenced = add_fence(run); !fenced && !fenced.error().is(Errc::no_space)) return fenced;

  // The checksum area: the largest part of the keyslots area left.
  RL_ASSIGN(const int reencrypt_id, luks2_free_keyslot_id(md));
  const auto [area_offset, area_size] = largest_free_area(run.header);
  Luks2ReencryptKeyslot slot;
  slot.mode = "reencrypt";
  slot.direction = "forward";
  slot.area_type = "checksum";
  slot.area_offset = area_offset;
  slot.area_size = area_size;
  slot.hash = kChecksumHash;
  const uint64_t data_size = data_segment_size(raw_size, old_segment.offset, old_segment.sector_size, old_segment.size);
  slot.sector_size = data_size % kBlock == 0 ? static_cast<uint32_t>(kBlock) : old_segment.sector_size;
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
  run.state.next = new_segment;
  run.state.next.flags = {"backup-final"};
  run.state.old_digest = *old_digest;
  run.state.new_digest = new_digest_id;
  run.state.data_size = data_size;
  run.state.progress = 0;
  set_luks2_reencrypt_segments(md, run.state, 0, 0);
  set_luks2_reencrypt_requirement(md, true);
  RL_TRY(assign_luks2_reencrypt_digest(md, run.keys.old_key.span(), run.keys.new_key.span(),
                                       run.options.minimal_digest_cost));
  return write_header(run);
}

// Unlocks the old and the new key of a recorded reencryption and checks the state against them.
Status resume(Run& run, const std::vector<std::span<const uint8_t>>& passphrases, uint64_t raw_size) {
  Luks2Metadata& md = run.header.metadata;
  RL_ASSIGN(run.state, luks2_reencrypt_state(md, raw_size));
  const auto unlock = [&](int digest_id, SecureBuffer& out) -> Status {
    for (const auto& passphrase : passphrases) {
      for (const int id : md.digests.at(digest_id).keyslots) {
        auto key = open_luks2_keyslot(run.image, md, id, passphrase);
        if (key) {
          out = std::move(*key);
          return {};
        }
        if (!key.error().is(Errc::bad_key)) return std::move(key).error();
      }
    }
    return Error(Errc::bad_key, run.image.name() + ": no passphrase given opens a keyslot of the " +
                                    (digest_id == run.state.old_digest ? "old" : "new") +
                                    " volume key, which resuming the reencryption needs");
  };
  RL_TRY(unlock(run.state.old_digest, run.keys.old_key));
  RL_TRY(unlock(run.state.new_digest, run.keys.new_key));
  if (!luks2_reencrypt_digest_matches(md, run.keys.old_key.span(), run.keys.new_key.span())) {
    return Error(Errc::bad_header, run.image.name() +
                                       ": the reencryption state does not match its digest (edited or damaged "
                                       "metadata); refusing to touch the data");
  }
  RL_ASSIGN(run.keys.old_cipher, cipher_for(run.state.previous.encryption, run.keys.old_key.span()));
  RL_ASSIGN(run.keys.new_cipher, cipher_for(run.state.next.encryption, run.keys.new_key.span()));
  if (run.state.next.sector_size != run.state.previous.sector_size) {
    return Error(Errc::unsupported, run.image.name() +
                                        ": the reencryption changes the sector size, which rbd-luks "
                                        "does not resume; finish it with cryptsetup");
  }
  for (const auto& [id, ks] : md.keyslots) {
    if (luks2_keyslot_digest(md, id) == run.state.new_digest && !is_fence(md, run.state.new_digest, id)) {
      run.report.new_keyslots.push_back(id);
    }
  }
  run.report.resumed = true;
  // A run cryptsetup began has no fence; one that fits goes in before any data moves.
  if (auto fenced = add_fence(run); fenced) {
    RL_TRY(write_header(run));
  } else if (!fenced.error().is(Errc::no_space)) {
    return fenced;
  }
  return {};
}

}  // namespace

Result<ReencryptReport> reencrypt_luks2(RawImage& image, const std::vector<std::span<const uint8_t>>& passphrases,
                                        const ReencryptOptions& options) {
  auto loaded = read_luks2_header(image);
  if (!loaded) {
    if (auto volume = load_luks(image); volume && (*volume)->layout().version == 1) {
      return Error(Errc::unsupported, image.name() + ": LUKS1 volumes are not reencrypted; only LUKS2");
    }
    return std::move(loaded).error();
  }
  RL_ASSIGN(const uint64_t raw_size, image.size());
  Run run{image, std::move(loaded->header), {}, {}, options, {}};
  if (luks2_reencrypt_in_progress(run.header.metadata)) {
    RL_TRY(resume(run, passphrases, raw_size));
    if (run.state.hotzone_length) RL_TRY(recover_hotzone(run));
  } else {
    RL_TRY(begin(run, passphrases, raw_size));
  }
  run.report.data_bytes = run.state.data_size;
  RL_TRY(run_steps(run));
  RL_TRY(finish(run));
  return std::move(run.report);
}

}  // namespace rbdluks
