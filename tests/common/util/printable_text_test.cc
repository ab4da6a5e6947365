// printable() and is_valid_utf8(): what may reach a terminal from a header or image metadata.
#include "printable_text.h"

#include <gtest/gtest.h>

#include <string>

namespace rbdluks {
namespace {

TEST(PrintableText, PassesPrintableUtf8Unchanged) {
  for (const std::string text : {"", "plain label", "Grüße, 東京 😀", "tab-free: a=b; c#d"}) {
    EXPECT_EQ(printable(text), text);
    EXPECT_TRUE(is_valid_utf8(text)) << text;
  }
}

TEST(PrintableText, EscapesControlBytesInvalidUtf8AndBackslash) {
  EXPECT_EQ(printable("bad\xff\xfe\x1b[31mred\x07\ttab\nnext"), "bad\\xff\\xfe\\x1b[31mred\\x07\\x09tab\\x0anext");
  EXPECT_EQ(printable(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(printable("a\\xff"), "a\\\\xff");  // a literal backslash cannot pass for an escaped byte
  EXPECT_EQ(printable("\x7f"), "\\x7f");
}

TEST(PrintableText, EscapesBrokenSequencesBytewise) {
  EXPECT_EQ(printable("sub\xc3"), "sub\\xc3");                       // truncated at the end
  EXPECT_EQ(printable("\xc3("), "\\xc3(");                           // bad continuation byte
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a UTF-16 surrogate
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  for (const std::string text : {"sub\xc3", "\xc3(", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff"}) {
    EXPECT_FALSE(is_valid_utf8(text));
  }
}

TEST(PrintableText, EscapesCharactersThatReorderOrBreakLines) {
  EXPECT_EQ(printable("\xc2\x9b"
                      "2J"),
            "\\u{009b}2J");  // C1 CSI
  EXPECT_EQ(printable("abc\xe2\x80\xae"
                      "fed"),
            "abc\\u{202e}fed");                                   // right-to-left override
  EXPECT_EQ(printable("one\xe2\x80\xa8two"), "one\\u{2028}two");  // line separator
  EXPECT_TRUE(is_valid_utf8("abc\xe2\x80\xae"));                  // valid, just not to be shown raw
}

}  // namespace
}  // namespace rbdluks
