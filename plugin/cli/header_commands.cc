// Commands that create or inspect a LUKS header: create, format, dump, check.
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cipher_spec.h"
#include "commands.h"
#include "format_options.h"
#include "key_source.h"
#include "random.h"
#include "secret_file.h"
#include "target.h"
#include "volume_access.h"

namespace rbdluks::cli {
namespace {

constexpr uint64_t kMiB = 1 << 20;

uint64_t default_data_offset(const FormatOptions& options) {
  return options.data_offset.value_or(options.version == 2 ? 16 * kMiB : 4 * kMiB);
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
  RL_TRY(refuse_image_in_use(cl, *image, "format it"));
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
