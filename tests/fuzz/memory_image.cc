// MemoryImage: reads from the held bytes, zeros past them; every change is refused, as on a
// read-only image, since nothing a harness drives without a passphrase writes.
#include "memory_image.h"

#include <algorithm>
#include <cstring>

namespace rbdluks::fuzz {
namespace {

Error read_only_error(const std::string& name) { return Error(Errc::failure, name + " is read-only"); }

}  // namespace

MemoryImage::MemoryImage(std::vector<uint8_t> bytes, uint64_t size)
    : bytes_(std::move(bytes)), size_(std::max<uint64_t>(size, bytes_.size())) {}

Status MemoryImage::read(uint64_t offset, std::span<uint8_t> out) {
  if (offset > size_ || out.size() > size_ - offset) {
    return Error(Errc::failure, "read " + name_ + ": " + std::to_string(out.size()) + " bytes at " +
                                    std::to_string(offset) + " pass its end");
  }
  size_t held = 0;
  if (offset < bytes_.size()) {
    held = std::min<uint64_t>(out.size(), bytes_.size() - offset);
    std::memcpy(out.data(), bytes_.data() + offset, held);
  }
  std::fill(out.begin() + static_cast<ptrdiff_t>(held), out.end(), uint8_t{0});
  return {};
}

Status MemoryImage::write(uint64_t, std::span<const uint8_t>) { return read_only_error(name_); }
Status MemoryImage::flush() { return {}; }
Status MemoryImage::resize(uint64_t) { return read_only_error(name_); }
Result<std::optional<std::string>> MemoryImage::get_metadata(const std::string&) {
  return std::optional<std::string>();
}
Status MemoryImage::set_metadata(const std::string&, const std::string&) { return read_only_error(name_); }
Result<bool> MemoryImage::remove_metadata(const std::string&) { return read_only_error(name_); }
Result<std::unique_ptr<HeaderLock>> MemoryImage::lock_header(const std::string&) { return read_only_error(name_); }

}  // namespace rbdluks::fuzz
