// OverwriteBackup: the bytes a format is about to overwrite, kept so that a format whose write
// fails can put them back (format_luks promises an unchanged image when it fails).
#pragma once

#include <cstdint>
#include <vector>

#include "raw_image.h"
#include "result.h"

namespace rbdluks {

class OverwriteBackup {
 public:
  // Reads [0, length) of image.
  static Result<OverwriteBackup> take(RawImage& image, uint64_t length);

  // Writes the bytes back and flushes, then returns `error` for the caller to pass on, saying so
  // when the image could not be restored either.
  Error restore(Error error) const;

 private:
  OverwriteBackup(RawImage& image, std::vector<uint8_t> bytes) : image_(&image), bytes_(std::move(bytes)) {}

  RawImage* image_;
  std::vector<uint8_t> bytes_;
};

}  // namespace rbdluks
