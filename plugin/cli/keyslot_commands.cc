// `keyslot list|add|remove`: keyslot management on an existing volume.
#include <iostream>

#include "commands.h"
#include "key_source.h"
#include "volume_access.h"

namespace rbdluks::cli {
namespace {

Status keyslot_list(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "keyslot list TARGET"));
  RL_ASSIGN(auto loaded, load_volume(cl, args[0], OpenMode::read_only));
  for (const KeyslotInfo& slot : loaded.volume->keyslots()) {
    if (!slot.active) continue;
    std::cout << slot.id << "\t" << kdf_name(slot.kdf.type);
    if (slot.kdf.type == KdfType::pbkdf2) {
      std::cout << "\t" << slot.kdf.hash << "\titerations=" << slot.kdf.iterations;
    } else {
      std::cout << "\ttime=" << slot.kdf.iterations << "\tmemory=" << slot.kdf.memory_kib
                << "\tthreads=" << slot.kdf.parallel;
    }
    if (slot.unbound) std::cout << "\tunbound";
    std::cout << "\n";
  }
  return {};
}

Status keyslot_add(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "keyslot add TARGET --new-passphrase-file FILE"));
  if (!cl.has("new-passphrase-file")) return Error(Errc::usage, "keyslot add needs --new-passphrase-file FILE");
  RL_ASSIGN(auto new_passphrase, passphrase_from_file_option(cl, "new-passphrase-file"));
  RL_ASSIGN(auto unlocked, unlock_volume_to_change(cl, args[0], "keyslot add"));
  RL_ASSIGN(auto kdf, kdf_request_from(cl, unlocked.loaded.volume->layout().version));
  // --key-slot names the slot that opens; the new slot is the first free one.
  auto slot = unlocked.loaded.volume->add_keyslot(unlocked.key.volume_key.span(), new_passphrase.span(), kdf);
  if (!slot) return Error(slot.error()).context(args[0]);
  RL_TRY(unlocked.loaded.header_lock->release());
  inform(cl, "added keyslot " + std::to_string(*slot) + " to " + args[0]);
  return {};
}

Status keyslot_remove(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 2, 2, "keyslot remove TARGET SLOT"));
  RL_ASSIGN(auto slot, parse_size(args[1], false));
  // Removing a keyslot needs proof of a key: another passphrase that opens the volume.
  RL_ASSIGN(auto unlocked, unlock_volume_to_change(cl, args[0], "keyslot remove"));
  LuksVolume& volume = *unlocked.loaded.volume;
  // Unbound keyslots do not open the data, so they do not count towards keeping it readable.
  const KeyslotInfo* removed = nullptr;
  size_t bound = 0;
  const auto slots = volume.keyslots();
  for (const KeyslotInfo& info : slots) {
    bound += info.active && !info.unbound ? 1 : 0;
    if (info.active && info.id == static_cast<int>(slot)) removed = &info;
  }
  if (removed == nullptr) return Error(Errc::usage, args[0] + ": keyslot " + args[1] + " is not active");
  if (!removed->unbound && bound == 1 && !cl.has("force")) {
    return Error(Errc::usage, args[0] + ": keyslot " + args[1] +
                                  " is the last one that opens the data; removing it makes the data unreadable "
                                  "(use --force)");
  }
  RL_TRY(volume.remove_keyslot(static_cast<int>(slot)));
  RL_TRY(unlocked.loaded.header_lock->release());
  inform(cl, "removed keyslot " + args[1] + " from " + args[0]);
  return {};
}

}  // namespace

Status cmd_keyslot(const CommandLine& cl, const Args& args) {
  if (args.empty()) return Error(Errc::usage, "keyslot needs a subcommand: list, add or remove");
  const Args rest(args.begin() + 1, args.end());
  if (args[0] == "list") return keyslot_list(cl, rest);
  if (args[0] == "add") return keyslot_add(cl, rest);
  if (args[0] == "remove") return keyslot_remove(cl, rest);
  return Error(Errc::usage, "unknown keyslot subcommand '" + args[0] + "' (list, add, remove)");
}

}  // namespace rbdluks::cli
