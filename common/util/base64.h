// Base64 (RFC 4648, standard alphabet, '=' padding) as LUKS2 stores salts and digests in its JSON
// metadata, and as key managers exchange binary payloads.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rbdluks {

std::string base64_encode(std::span<const uint8_t> bytes);

// The same into out, which has base64_size(bytes.size()) bytes: for secrets, whose encoding must not
// pass through a std::string.
size_t base64_size(size_t bytes);
void base64_encode(std::span<const uint8_t> bytes, std::span<uint8_t> out);

// Strict decoding: only the standard alphabet, no whitespace, length a multiple of 4, padding only at
// the end and with zero bits before it. std::nullopt when text is not such base64.
std::optional<std::vector<uint8_t>> base64_decode(std::string_view text);

}  // namespace rbdluks
