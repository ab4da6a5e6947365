// Text from untrusted places (a LUKS header's label, image metadata, a key reference) made safe to
// print: a header is data that whoever can write the image controls, and printing it raw would let
// it move the terminal's cursor, recolour or hide lines, or break the one-line error contract.
#pragma once

#include <string>
#include <string_view>

namespace rbdluks {

// True when text is valid UTF-8: no stray or truncated sequences, overlong forms, surrogates or
// code points past U+10FFFF.
bool is_valid_utf8(std::string_view text);

// text with every byte that is not part of a valid UTF-8 sequence written as \xNN, every control
// character (C0, DEL, C1) and every character that reorders or breaks lines on display (bidi
// controls, U+2028, U+2029) written as \xNN or \u{XXXX}, and the backslash as \\, so that the
// output is one line and maps back to exactly one byte string. Valid printable UTF-8 passes as it is.
std::string printable(std::string_view text);

}  // namespace rbdluks
