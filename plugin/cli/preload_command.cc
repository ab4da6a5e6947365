// `preload enable|disable|status`: the switch in an RBD image's metadata that makes
// librbd_luks_preload.so decrypt it for programs on librbd's C API (QEMU, qemu-img, fio). Off by
// default, so that a volume something else already decrypts (QEMU's luks driver on Cinder's LUKS1
// volumes) is never decrypted twice. `enable` records nothing unless the key opens a keyslot: the
// key source on the command line, else the image's key reference, which is what the preload
// library uses too when its settings name no passphrase file.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "keyring.h"
#include "printable_text.h"
#include "target.h"
#include "volume_access.h"

namespace rbdluks::cli {
namespace {

Result<Target> rbd_target(const std::string& text, const char* synopsis) {
  RL_ASSIGN(Target target, parse_target(text));
  if (target.kind != Target::Kind::rbd) {
    return Error(Errc::usage, std::string(synopsis) + ": the preload library serves RBD images, not " + text);
  }
  if (target.snapshot) return Error(Errc::usage, std::string(synopsis) + ": name the image, not a snapshot");
  return target;
}

Status preload_enable(const CommandLine& cl, const Args& args) {
  constexpr const char* kSynopsis = "preload enable TARGET [key source]";
  RL_TRY(expect_args(args, 1, 1, kSynopsis));
  RL_TRY(rbd_target(args[0], kSynopsis));
  RL_ASSIGN(auto unlocked, unlock_volume_to_change(cl, args[0], "preload enable"));
  RL_TRY(unlocked.loaded.image->set_metadata(kPreloadMetadataKey, kPreloadMetadataOn));
  RL_TRY(unlocked.loaded.header_lock->release());
  inform(cl, "librbd_luks_preload.so now decrypts " + args[0] + " (the key opened keyslot " +
                 std::to_string(unlocked.key.keyslot) + ")");
  if (unlocked.loaded.volume->layout().version == 1) {
    inform(cl,
           "note: Nova decrypts Cinder's LUKS1 volumes with QEMU's luks driver; where it does, run "
           "'rbd-luks preload disable " +
               args[0] + "'");
  }
  return {};
}

Status preload_disable(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "preload disable TARGET [--force]"));
  RL_ASSIGN(const Target target, rbd_target(args[0], "preload disable"));
  RL_ASSIGN(auto image, open_target(cl, target, OpenMode::read_write));
  // A client with the image open decrypts it; one that opens it afterwards would see ciphertext
  // and, in a guest, write plaintext over the LUKS header.
  RL_TRY(refuse_image_in_use(cl, *image, "turn its preload off"));
  RL_ASSIGN(auto header_lock, lock_header_for(*image, "preload disable"));
  RL_TRY(image->remove_metadata(kPreloadMetadataKey));
  RL_TRY(header_lock->release());
  inform(cl, "librbd_luks_preload.so passes " + args[0] + " through to librbd unchanged");
  return {};
}

Status preload_status(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "preload status TARGET [--json]"));
  RL_ASSIGN(const Target target, rbd_target(args[0], "preload status"));
  RL_ASSIGN(auto image, open_target(cl, target, OpenMode::read_only));
  RL_ASSIGN(auto value, image->get_metadata(kPreloadMetadataKey));
  RL_ASSIGN(auto reference, image->get_metadata(kKeyRefMetadataKey));
  const bool on = value == kPreloadMetadataOn;
  if (cl.has("json")) {
    nlohmann::json out = {{"preload", on}, {"key_ref", nullptr}};
    if (reference) out["key_ref"] = *reference;
    print_json(out);
    return {};
  }
  std::cout << "preload: " << (on ? "on" : "off") << "\n";
  std::cout << "key-ref: " << printable(reference.value_or("none")) << "\n";
  return {};
}

}  // namespace

Status cmd_preload(const CommandLine& cl, const Args& args) {
  if (args.empty()) return Error(Errc::usage, "preload needs a subcommand: enable, disable or status");
  const Args rest(args.begin() + 1, args.end());
  if (args[0] == "enable") return preload_enable(cl, rest);
  if (args[0] == "disable") return preload_disable(cl, rest);
  if (args[0] == "status") return preload_status(cl, rest);
  return Error(Errc::usage, "unknown preload subcommand '" + args[0] + "' (enable, disable, status)");
}

}  // namespace rbdluks::cli
