// Commands that create or inspect a LUKS header: create, format, dump, check.
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cipher_spec.h"
#include "commands.h"
#include "key_source.h"
#include "random.h"
#include "secret_file.h"
#include "target.h"
#include "volume_access.h"

namespace rbdluks::cli {
namespace {

constexpr uint64_t kMiB = 1 << 20;

Result<FormatOptions> format_options_from(const CommandLine& cl) {
  FormatOptions options;
  const std::string type = cl.get("type").value_or("luks2");
  if (type == "luks2")
    options.version = 2;
  else if (type == "luks1")
    options.version = 1;
  else
    return Error(Errc::usage, "--type must be luks2 or luks1, not '" + type + "'");

  options.cipher = cl.get("cipher").value_or("aes-xts-plain64");
  RL_ASSIGN(auto key_bits, cl.get_uint("key-size"));
  if (key_bits && *key_bits != 256 && *key_bits != 512) return Error(Errc::usage, "--key-size must be 256 or 512");
  options.key_bytes = static_cast<uint32_t>(key_bits.value_or(512) / 8);
  if (auto status = check_cipher_key_size(options.cipher, options.key_bytes); !status) {
    return Error(Errc::usage, status.error().message());
  }

  RL_ASSIGN(auto sector, cl.get_uint("sector-size"));
  if (options.version == 1) {
    if (sector && *sector != 512) return Error(Errc::usage, "--sector-size: LUKS1 supports only 512-byte sectors");
    options.sector_size = 512;
  } else {
    options.sector_size = static_cast<uint32_t>(sector.value_or(4096));
    if (options.sector_size != 512 && options.sector_size != 1024 && options.sector_size != 2048 &&
        options.sector_size != 4096) {
      return Error(Errc::usage, "--sector-size must be 512, 1024, 2048 or 4096");
    }
  }
  RL_ASSIGN(options.data_offset, cl.get_size("data-offset"));
  RL_ASSIGN(options.kdf, kdf_request_from(cl, options.version));
  options.uuid = cl.get("uuid");
  return options;
}

uint64_t default_data_offset(const FormatOptions& options) {
  return options.data_offset.value_or(options.version == 2 ? 16 * kMiB : 4 * kMiB);
}

bool holds_luks_magic(RawImage& image) {
  uint8_t magic[6] = {};
  auto size = image.size();
  if (!size || *size < sizeof magic || !image.read(0, magic)) return false;
  return std::memcmp(magic, "LUKS\xba\xbe", 6) == 0 || std::memcmp(magic, "SKUL\xba\xbe", 6) == 0;
}

Status format_image(const CommandLine& cl, RawImage& image, const FormatOptions& options, const NewVolumeKey& key) {
  SecureBuffer volume_key(options.key_bytes);
  RL_TRY(fill_random(volume_key.span()));
  auto volume = format_luks(image, options, volume_key.span(), key.passphrase.span());
  if (!volume) {
    discard_new_key(cl, key);
    return Error(volume.error()).context("format " + image.name());
  }
  RL_TRY(record_key_reference(image, key));
  if (key.reference) inform(cl, "key: " + key.reference->str() + " (recorded in the image metadata)");
  inform(cl, "formatted " + image.name() + " as LUKS" + std::to_string(options.version) + ", " +
                 std::to_string((*volume)->layout().sector_size) + "-byte sectors, keyslot 0");
  return {};
}

}  // namespace

Status cmd_create(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "create TARGET --size BYTES"));
  RL_ASSIGN(auto size, cl.get_size("size"));
  if (!size || *size == 0) return Error(Errc::usage, "create needs --size BYTES (the plaintext size)");
  RL_ASSIGN(auto options, format_options_from(cl));
  if (*size % options.sector_size != 0) {
    return Error(Errc::usage,
                 "--size must be a multiple of the sector size (" + std::to_string(options.sector_size) + ")");
  }
  RL_ASSIGN(auto target, parse_target(args[0]));
  // The key source is checked before anything exists, so a typo leaves no empty image behind.
  RL_ASSIGN(auto key, key_for_new_volume(cl, target.spec));
  auto image = create_target(cl, target, default_data_offset(options) + *size);
  if (!image) {
    discard_new_key(cl, key);
    return std::move(image).error();
  }
  auto header_lock = lock_header_for(**image, "create");
  if (!header_lock) {
    discard_new_key(cl, key);
    return std::move(header_lock).error();
  }
  RL_TRY(format_image(cl, **image, options, key));
  return (*header_lock)->release();
}

Status cmd_format(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "format TARGET [format options]"));
  RL_ASSIGN(auto options, format_options_from(cl));
  RL_ASSIGN(auto target, parse_target(args[0]));
  RL_ASSIGN(auto image, open_target(cl, target, OpenMode::read_write));
  RL_ASSIGN(auto header_lock, lock_header_for(*image, "format"));
  if (!cl.has("force") && holds_luks_magic(*image)) {
    return Error(Errc::failure, target.spec + " already holds a LUKS header; use --force to overwrite it");
  }
  RL_TRY(refuse_non_empty_image(cl, target, *image));
  RL_TRY(refuse_image_in_use(cl, target, *image, "format it"));
  RL_ASSIGN(auto key, key_for_new_volume(cl, target.spec));
  RL_TRY(format_image(cl, *image, options, key));
  return header_lock->release();
}

Status cmd_dump(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "dump TARGET [--json | --dump-volume-key --volume-key-file FILE]"));
  if (cl.has("dump-volume-key")) {
    auto path = cl.get("volume-key-file");
    if (!path) return Error(Errc::usage, "--dump-volume-key needs --volume-key-file FILE (keys never go to stdout)");
    RL_ASSIGN(auto unlocked, unlock_volume(cl, args[0], OpenMode::read_only));
    RL_TRY(write_secret_file(*path, unlocked.key.volume_key.span()));
    inform(cl, "volume key (" + std::to_string(unlocked.key.volume_key.size()) + " bytes) written to " + *path);
    return {};
  }
  RL_ASSIGN(auto loaded, load_volume(cl, args[0], OpenMode::read_only));
  if (cl.has("json")) {
    print_json(loaded.volume->describe());
  } else {
    std::cout << loaded.volume->describe_text();
  }
  return {};
}

Status cmd_check(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "check TARGET"));
  RL_ASSIGN(auto unlocked, unlock_volume(cl, args[0], OpenMode::read_only));
  inform(cl, "keyslot " + std::to_string(unlocked.key.keyslot) + " opens " + args[0]);
  return {};
}

}  // namespace rbdluks::cli
