// printable(): a UTF-8 decoder that escapes what it cannot or should not pass to a terminal.
#include "printable_text.h"

#include <cstdint>
#include <cstdio>

namespace rbdluks {
namespace {

// One step of decoding: the code point at the front of text and its length in bytes, or length 0
// when the front byte does not start a valid sequence.
struct Decoded {
  char32_t code_point = 0;
  size_t length = 0;
};

Decoded decode(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(0);
  if (lead < 0x80) return {lead, 1};
  size_t length = 0;
  char32_t code_point = 0;
  char32_t smallest = 0;
  if ((lead & 0xe0) == 0xc0) {
    length = 2, code_point = lead & 0x1f, smallest = 0x80;
  } else if ((lead & 0xf0) == 0xe0) {
    length = 3, code_point = lead & 0x0f, smallest = 0x800;
  } else if ((lead & 0xf8) == 0xf0) {
    length = 4, code_point = lead & 0x07, smallest = 0x10000;
  } else {
    return {};
  }
  if (text.size() < length) return {};
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return {};
    code_point = (code_point << 6) | (byte(i) & 0x3f);
  }
  if (code_point < smallest || code_point > 0x10ffff || (code_point >= 0xd800 && code_point <= 0xdfff)) return {};
  return {code_point, length};
}

bool needs_escape(char32_t c) {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x061c || c == 0x200e || c == 0x200f ||
         (c >= 0x2028 && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  while (!text.empty()) {
    const Decoded d = decode(text);
    if (d.length == 0) return false;
    text.remove_prefix(d.length);
  }
  return true;
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  char escape[16];
  while (!text.empty()) {
    const Decoded d = decode(text);
    if (d.length == 0) {
      std::snprintf(escape, sizeof escape, "\\x%02x", static_cast<uint8_t>(text.front()));
      out += escape;
      text.remove_prefix(1);
      continue;
    }
    if (d.code_point == '\\') {
      out += "\\\\";
    } else if (needs_escape(d.code_point)) {
      // Below U+0080 the byte is the code point; C1 controls are two bytes, written as code points
      // so that \xNN always means one raw byte.
      if (d.code_point < 0x80) {
        std::snprintf(escape, sizeof escape, "\\x%02x", static_cast<unsigned>(d.code_point));
      } else {
        std::snprintf(escape, sizeof escape, "\\u{%04x}", static_cast<unsigned>(d.code_point));
      }
      out += escape;
    } else {
      out.append(text.substr(0, d.length));
    }
    text.remove_prefix(d.length);
  }
  return out;
}

}  // namespace rbdluks
