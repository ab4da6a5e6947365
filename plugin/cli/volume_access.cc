// Opening and unlocking volumes for the CLI commands.
#include "volume_access.h"

#include <thread>

#include "cipher_spec.h"
#include "key_source.h"
#include "target.h"

namespace rbdluks::cli {

Result<KdfRequest> kdf_request_from(const CommandLine& cl, int luks_version) {
  KdfRequest request;
  request.type = luks_version == 1 ? KdfType::pbkdf2 : KdfType::argon2id;
  if (auto name = cl.get("pbkdf")) {
    auto type = parse_kdf_name(*name);
    if (!type) return Error(Errc::usage, "--pbkdf: '" + *name + "' is not argon2id, argon2i or pbkdf2");
    request.type = *type;
  }
  if (luks_version == 1 && request.type != KdfType::pbkdf2) {
    return Error(Errc::usage, "--pbkdf: LUKS1 keyslots support only pbkdf2");
  }
  if (auto hash = cl.get("hash")) request.hash = *hash;
  RL_ASSIGN(auto iter_time, cl.get_uint("iter-time"));
  if (iter_time) {
    if (*iter_time == 0 || *iter_time > 60000) return Error(Errc::usage, "--iter-time must be 1..60000 ms");
    request.iter_time_ms = static_cast<uint32_t>(*iter_time);
  }
  RL_ASSIGN(auto iterations, cl.get_uint("pbkdf-force-iterations"));
  if (iterations) {
    if (*iterations == 0 || *iterations > UINT32_MAX)
      return Error(Errc::usage, "--pbkdf-force-iterations is out of range");
    request.force_iterations = static_cast<uint32_t>(*iterations);
  }
  RL_ASSIGN(auto memory, cl.get_uint("pbkdf-memory"));
  if (memory) {
    if (*memory < 32 || *memory > 4194304) return Error(Errc::usage, "--pbkdf-memory must be 32..4194304 KiB");
    request.max_memory_kib = static_cast<uint32_t>(*memory);
  }
  RL_ASSIGN(auto parallel, cl.get_uint("pbkdf-parallel"));
  if (parallel) {
    if (*parallel == 0 || *parallel > 16) return Error(Errc::usage, "--pbkdf-parallel must be 1..16");
    request.parallel = static_cast<uint32_t>(*parallel);
  }
  return request;
}

namespace {

// Opens the target and reads its header; with a command, takes the header lock in between.
Result<LoadedVolume> load(const CommandLine& cl, const std::string& target_text, OpenMode mode,
                          const std::string* command) {
  RL_ASSIGN(auto target, parse_target(target_text));
  LoadedVolume loaded;
  RL_ASSIGN(loaded.image, open_target(cl, target, mode));
  if (command != nullptr) {
    RL_ASSIGN(loaded.header_lock, lock_header_for(*loaded.image, *command));
  }
  auto volume = load_luks(*loaded.image);
  if (!volume) return Error(volume.error()).context(target.spec);
  loaded.volume = std::move(volume).value();
  return loaded;
}

Result<UnlockedVolume> unlock(const CommandLine& cl, const std::string& target, OpenMode mode,
                              const std::string* command) {
  UnlockedVolume unlocked;
  RL_ASSIGN(unlocked.loaded, load(cl, target, mode, command));
  RL_ASSIGN(auto passphrase, passphrase_for(cl, *unlocked.loaded.image));
  std::optional<int> slot;
  RL_ASSIGN(auto slot_option, cl.get_uint("key-slot"));
  if (slot_option) slot = static_cast<int>(*slot_option);
  auto key = unlocked.loaded.volume->open(passphrase.span(), slot);
  if (!key) return Error(key.error()).context(target);
  unlocked.key = std::move(key).value();
  const VolumeLayout& layout = unlocked.loaded.volume->layout();
  RL_ASSIGN(auto cipher, make_cipher(layout.cipher, unlocked.key.volume_key.span()));
  // Eight bounce buffers: as many pieces in flight as thin_copy keeps chunks in flight.
  unlocked.data = std::make_unique<EncryptedImage>(*unlocked.loaded.image, std::move(cipher), layout.data_offset,
                                                   layout.sector_size, layout.data_size,
                                                   BounceBufferConfig{.buffer_bytes = size_t{4} << 20, .count = 8});
  return unlocked;
}

}  // namespace

Result<LoadedVolume> load_volume(const CommandLine& cl, const std::string& target, OpenMode mode) {
  return load(cl, target, mode, nullptr);
}

Result<UnlockedVolume> unlock_volume(const CommandLine& cl, const std::string& target, OpenMode mode) {
  return unlock(cl, target, mode, nullptr);
}

Result<LoadedVolume> load_volume_to_change(const CommandLine& cl, const std::string& target,
                                           const std::string& command) {
  return load(cl, target, OpenMode::read_write, &command);
}

Result<UnlockedVolume> unlock_volume_to_change(const CommandLine& cl, const std::string& target,
                                               const std::string& command) {
  return unlock(cl, target, OpenMode::read_write, &command);
}

Result<std::unique_ptr<HeaderLock>> lock_header_for(RawImage& image, const std::string& command) {
  return image.lock_header("rbd-luks " + command);
}

}  // namespace rbdluks::cli
