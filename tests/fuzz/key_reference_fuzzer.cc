// libFuzzer harness: key references as they arrive from image metadata, and the policy that decides
// whether a client accepts them (keyring.h, key_reference_policy.h).
//
// Input: three lines and a tail. Line 1 is an accepted-references list (--accept-key-refs, the C and
// C++ APIs), line 2 a reference (the rbd-luks.key-ref metadata, which whoever can write the image
// controls), line 3 a passphrase encoding (rbd-luks.passphrase-encoding, likewise), and the rest
// the key bytes that encoding turns into a passphrase.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "key_reference_policy.h"
#include "keyring.h"

namespace {

using namespace rbdluks;

// The schemes plugin/keyring's registry hands to KeyReferencePolicy::parse, plus one it does not
// know, so that a policy may name a scheme no reference can be fetched from.
const std::vector<std::string> kSchemes = {"barbican", "config-key", "file", "vault"};

// The next line of input (without its '\n'); the rest stays in input.
std::string next_line(std::string_view& input) {
  const size_t end = input.find('\n');
  std::string line(input.substr(0, end));
  input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string policy_text = next_line(input);
  const std::string reference_text = next_line(input);
  const std::string encoding_text = next_line(input);
  const auto key = std::span(reinterpret_cast<const uint8_t*>(input.data()), input.size());

  auto reference = KeyReference::parse(reference_text);
  if (reference) {
    // What key-ref set records and the metadata then holds must read back as the same reference.
    auto again = KeyReference::parse(reference->str());
    if (!again || again->scheme != reference->scheme || again->locator != reference->locator) __builtin_trap();
  }
  auto policy = KeyReferencePolicy::parse(policy_text, kSchemes);
  if (policy && reference) static_cast<void>(policy->check(*reference, "the metadata of memory:fuzz-input"));

  auto encoding = parse_passphrase_encoding(encoding_text);
  if (encoding) {
    const SecureBuffer passphrase = encode_passphrase(key, *encoding);
    // raw keeps the bytes, hex doubles them, the mangled hex of old Cinder volumes lies in between.
    const size_t n = key.size();
    const bool size_ok = *encoding == PassphraseEncoding::raw   ? passphrase.size() == n
                         : *encoding == PassphraseEncoding::hex ? passphrase.size() == 2 * n
                                                                : passphrase.size() >= n && passphrase.size() <= 2 * n;
    if (!size_ok) __builtin_trap();
  }
  return 0;
}
