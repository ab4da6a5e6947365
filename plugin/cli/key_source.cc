// Key sources for the CLI: passphrase files, keyring references, image metadata, new keys.
#include "key_source.h"

#include "key_reference_policy.h"
#include "keyring_registry.h"
#include "random.h"
#include "secret_file.h"
#include "target.h"

namespace rbdluks::cli {
namespace {

constexpr size_t kNewKeyBytes = 64;  // what Cinder stores for a 512-bit AES-XTS volume

Result<std::optional<PassphraseEncoding>> encoding_option(const CommandLine& cl) {
  auto text = cl.get("passphrase-encoding");
  if (!text) return std::optional<PassphraseEncoding>();
  RL_ASSIGN(auto encoding, parse_passphrase_encoding(*text));
  return std::optional<PassphraseEncoding>(encoding);
}

Status exclusive_key_options(const CommandLine& cl) {
  int given = 0;
  for (const char* option : {"passphrase-file", "key-ref", "new-key"}) given += cl.has(option) ? 1 : 0;
  if (given > 1) return Error(Errc::usage, "give only one of --passphrase-file, --key-ref and --new-key");
  return {};
}

// --accept-key-refs: which references the command takes from image metadata (default: all).
Result<KeyReferencePolicy> metadata_policy(const CommandLine& cl) {
  auto text = cl.get("accept-key-refs");
  if (!text) return KeyReferencePolicy();
  auto policy = parse_key_reference_policy(*text);
  if (!policy) return Error(policy.error()).context("--accept-key-refs");
  return policy;
}

Result<SecureBuffer> fetch_passphrase(const CommandLine& cl, const KeyReference& reference,
                                      PassphraseEncoding encoding) {
  RL_ASSIGN(auto key, fetch_key(reference, keyring_environment(cl)));
  return encode_passphrase(key.span(), encoding);
}

}  // namespace

KeyringEnvironment keyring_environment(const CommandLine& cl) {
  return KeyringEnvironment{[&cl] { return connect_for(cl); }, cl.get("config")};
}

Result<SecureBuffer> passphrase_from_file_option(const CommandLine& cl, const std::string& option) {
  auto path = cl.get(option);
  if (!path) return Error(Errc::usage, "no key source: pass --" + option + " FILE (or - for standard input)");
  auto secret = read_secret_file(*path);
  if (!secret) return Error(Errc::key_unavailable, "--" + option + ": " + secret.error().message());
  return secret;
}

Result<SecureBuffer> passphrase_for(const CommandLine& cl, RawImage& image) {
  RL_TRY(exclusive_key_options(cl));
  RL_ASSIGN(const auto policy, metadata_policy(cl));
  if (cl.has("new-key")) return Error(Errc::usage, "--new-key only applies to format and create");
  if (cl.has("passphrase-file")) return passphrase_from_file_option(cl, "passphrase-file");
  RL_ASSIGN(auto encoding, encoding_option(cl));
  if (auto ref = cl.get("key-ref")) {
    RL_ASSIGN(auto reference, KeyReference::parse(*ref));
    return fetch_passphrase(cl, reference, encoding.value_or(PassphraseEncoding::raw));
  }
  RL_ASSIGN(auto stored_ref, image.get_metadata(kKeyRefMetadataKey));
  if (!stored_ref) {
    return Error(Errc::usage,
                 "no key source: pass --passphrase-file or --key-ref (" + image.name() + " records no key reference)");
  }
  RL_ASSIGN(auto reference, KeyReference::parse(*stored_ref));
  RL_TRY(policy.check(reference, "the metadata of " + image.name()));
  if (!encoding) {
    RL_ASSIGN(auto stored_encoding, image.get_metadata(kPassphraseEncodingMetadataKey));
    if (stored_encoding) {
      RL_ASSIGN(encoding, parse_passphrase_encoding(*stored_encoding));
    }
  }
  return fetch_passphrase(cl, reference, encoding.value_or(PassphraseEncoding::raw));
}

Result<NewVolumeKey> key_for_new_volume(const CommandLine& cl, const std::string& target_name) {
  RL_TRY(exclusive_key_options(cl));
  NewVolumeKey out;
  RL_ASSIGN(auto encoding, encoding_option(cl));
  out.encoding = encoding.value_or(PassphraseEncoding::raw);
  if (cl.has("passphrase-file")) {
    if (encoding) return Error(Errc::usage, "--passphrase-encoding applies to keyring keys, not passphrase files");
    RL_ASSIGN(out.passphrase, passphrase_from_file_option(cl, "passphrase-file"));
    return out;
  }
  if (auto ref = cl.get("key-ref")) {
    RL_ASSIGN(auto reference, KeyReference::parse(*ref));
    RL_ASSIGN(out.passphrase, fetch_passphrase(cl, reference, out.encoding));
    out.reference = reference;
    return out;
  }
  auto new_key = cl.get("new-key");
  if (!new_key) return Error(Errc::usage, "no key source: pass --passphrase-file, --key-ref or --new-key");
  // "barbican" alone: Barbican picks the locator; "config-key:KEY" and "file:PATH" name it.
  const size_t colon = new_key->find(':');
  const std::string scheme = new_key->substr(0, colon);
  const std::string name = colon == std::string::npos ? "rbd-luks " + target_name : new_key->substr(colon + 1);
  if (name.empty()) return Error(Errc::usage, "--new-key " + *new_key + " names no key");
  RL_ASSIGN(auto keyring, open_keyring(scheme, keyring_environment(cl)));
  SecureBuffer key(kNewKeyBytes);
  RL_TRY(fill_random(key.span()));
  RL_ASSIGN(auto reference, keyring->store(key.span(), name));
  out.passphrase = encode_passphrase(key.span(), out.encoding);
  out.reference = std::move(reference);
  out.created_key = std::move(key);
  return out;
}

Status record_key_reference(RawImage& image, const NewVolumeKey& key) {
  if (!key.reference) {
    // A passphrase-file volume must not keep a reference from an earlier format.
    RL_TRY(image.remove_metadata(kKeyRefMetadataKey));
    RL_TRY(image.remove_metadata(kPassphraseEncodingMetadataKey));
    return {};
  }
  RL_TRY(image.set_metadata(kKeyRefMetadataKey, key.reference->str()));
  return image.set_metadata(kPassphraseEncodingMetadataKey, passphrase_encoding_name(key.encoding));
}

void discard_new_key(const CommandLine& cl, const NewVolumeKey& key) {
  if (key.created_key.empty() || !key.reference) return;
  auto keyring = open_keyring(key.reference->scheme, keyring_environment(cl));
  // Best effort: the format's own error is the one to report.
  if (keyring) (void)(*keyring)->discard(key.reference->locator, key.created_key.span());
}

}  // namespace rbdluks::cli
