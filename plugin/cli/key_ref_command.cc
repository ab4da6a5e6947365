// `key-ref set|show|clear`: the key reference (and passphrase encoding) recorded in an image's
// metadata, for volumes that were formatted elsewhere, e.g. a Cinder volume whose key is in
// Barbican. `set` records nothing unless the referenced key opens a keyslot, so a recorded
// reference always worked once.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "key_source.h"
#include "keyring_registry.h"
#include "printable_text.h"
#include "target.h"
#include "volume_access.h"

namespace rbdluks::cli {
namespace {

Status key_ref_set(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 2, 2, "key-ref set TARGET REF [--passphrase-encoding raw|hex]"));
  for (const char* option : {"passphrase-file", "key-ref", "new-key"}) {
    if (cl.has(option))
      return Error(Errc::usage, std::string("key-ref set takes the reference as its argument, not --") + option);
  }
  RL_ASSIGN(const KeyReference reference, KeyReference::parse(args[1]));
  RL_ASSIGN(const PassphraseEncoding encoding,
            parse_passphrase_encoding(cl.get("passphrase-encoding").value_or("raw")));
  RL_ASSIGN(auto loaded, load_volume_to_change(cl, args[0], "key-ref set"));
  const KeyringEnvironment environment = keyring_environment(cl);
  RL_ASSIGN(const SecureBuffer key, fetch_key(reference, environment));
  const SecureBuffer passphrase = encode_passphrase(key.span(), encoding);
  auto unlocked = loaded.volume->open(passphrase.span(), std::nullopt);
  if (!unlocked) {
    Error error = std::move(unlocked).error();
    if (error.is(Errc::bad_key)) {
      return Error(Errc::bad_key, args[0] + ": the key " + reference.str() + " with passphrase encoding " +
                                      passphrase_encoding_name(encoding) +
                                      " opens no keyslot; nothing recorded (Cinder volumes need hex)");
    }
    return error.context(args[0]);
  }
  RL_TRY(loaded.image->set_metadata(kKeyRefMetadataKey, reference.str()));
  RL_TRY(loaded.image->set_metadata(kPassphraseEncodingMetadataKey, passphrase_encoding_name(encoding)));
  RL_TRY(loaded.header_lock->release());
  inform(cl, "recorded " + reference.str() + " (passphrase encoding " + passphrase_encoding_name(encoding) + ") in " +
                 args[0] + "; it opens keyslot " + std::to_string(unlocked->keyslot));
  return {};
}

Status key_ref_show(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "key-ref show TARGET [--json]"));
  RL_ASSIGN(auto target, parse_target(args[0]));
  RL_ASSIGN(auto image, open_target(cl, target, OpenMode::read_only));
  RL_ASSIGN(auto reference, image->get_metadata(kKeyRefMetadataKey));
  RL_ASSIGN(auto encoding, image->get_metadata(kPassphraseEncodingMetadataKey));
  if (cl.has("json")) {
    nlohmann::json out = {{"key_ref", nullptr}, {"passphrase_encoding", nullptr}};
    if (reference) out["key_ref"] = *reference;
    if (encoding) out["passphrase_encoding"] = *encoding;
    print_json(out);
    return {};
  }
  // Metadata is whatever whoever can write the image put there.
  std::cout << "key-ref: " << printable(reference.value_or("none")) << "\n";
  if (reference) std::cout << "passphrase-encoding: " << printable(encoding.value_or("raw")) << "\n";
  return {};
}

Status key_ref_clear(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "key-ref clear TARGET"));
  RL_ASSIGN(auto target, parse_target(args[0]));
  RL_ASSIGN(auto image, open_target(cl, target, OpenMode::read_write));
  RL_ASSIGN(auto header_lock, lock_header_for(*image, "key-ref clear"));
  RL_TRY(image->remove_metadata(kKeyRefMetadataKey));
  RL_TRY(image->remove_metadata(kPassphraseEncodingMetadataKey));
  RL_TRY(header_lock->release());
  inform(cl, "cleared the key reference of " + args[0]);
  return {};
}

}  // namespace

Status cmd_key_ref(const CommandLine& cl, const Args& args) {
  if (args.empty()) return Error(Errc::usage, "key-ref needs a subcommand: set, show or clear");
  const Args rest(args.begin() + 1, args.end());
  if (args[0] == "set") return key_ref_set(cl, rest);
  if (args[0] == "show") return key_ref_show(cl, rest);
  if (args[0] == "clear") return key_ref_clear(cl, rest);
  return Error(Errc::usage, "unknown key-ref subcommand '" + args[0] + "' (set, show, clear)");
}

}  // namespace rbdluks::cli
