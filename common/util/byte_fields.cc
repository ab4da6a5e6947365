// String fields of on-disk headers.
#include "byte_fields.h"

#include <algorithm>
#include <cstring>

namespace rbdluks {

Result<std::string> load_string_field(std::span<const uint8_t> bytes, size_t offset, size_t size, const char* what) {
  const auto field = bytes.subspan(offset, size);
  const auto nul = std::find(field.begin(), field.end(), uint8_t{0});
  if (nul == field.end()) return Error(Errc::bad_header, std::string(what) + " field is not NUL-terminated");
  return std::string(field.begin(), nul);
}

Status store_string_field(std::span<uint8_t> bytes, size_t offset, size_t size, const std::string& value,
                          const char* what) {
  if (value.size() >= size || value.find('\0') != std::string::npos) {
    return Error(Errc::failure, std::string(what) + " '" + value + "' does not fit the " + std::to_string(size) +
                                    "-byte header field");
  }
  std::memcpy(bytes.data() + offset, value.data(), value.size());
  return {};
}

}  // namespace rbdluks
