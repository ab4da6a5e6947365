// WindowImage: reads shifted into the base image; every change refused.
#include "window_image.h"

namespace rbdluks {

WindowImage::WindowImage(RawImage& base, uint64_t offset, uint64_t length)
    : base_(base),
      offset_(offset),
      length_(length),
      name_(base.name() + " (the " + std::to_string(length) + " bytes at offset " + std::to_string(offset) + ")") {}

Status WindowImage::read(uint64_t offset, std::span<uint8_t> out) {
  if (offset > length_ || out.size() > length_ - offset) {
    return Error(Errc::failure, name_ + ": read of " + std::to_string(out.size()) + " bytes at " +
                                    std::to_string(offset) + " passes its end");
  }
  return base_.read(offset_ + offset, out);
}

Error WindowImage::read_only_error() const { return Error(Errc::usage, name_ + " is read-only"); }

Status WindowImage::write(uint64_t /*offset*/, std::span<const uint8_t> /*data*/) { return read_only_error(); }
Status WindowImage::resize(uint64_t /*new_size*/) { return read_only_error(); }

// A window has no metadata: the base image's describes the base image (it may say where the window is).
Result<std::optional<std::string>> WindowImage::get_metadata(const std::string& /*key*/) {
  return std::optional<std::string>();
}
Status WindowImage::set_metadata(const std::string& /*key*/, const std::string& /*value*/) { return read_only_error(); }
Result<bool> WindowImage::remove_metadata(const std::string& /*key*/) { return read_only_error(); }
Result<std::unique_ptr<HeaderLock>> WindowImage::lock_header(const std::string& /*purpose*/) {
  return read_only_error();
}

}  // namespace rbdluks
