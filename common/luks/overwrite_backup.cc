// OverwriteBackup (see the header).
#include "overwrite_backup.h"

#include <utility>

namespace rbdluks {

Result<OverwriteBackup> OverwriteBackup::take(RawImage& image, uint64_t length) {
  std::vector<uint8_t> bytes(length);
  RL_TRY(image.read(0, bytes));
  return OverwriteBackup(image, std::move(bytes));
}

Error OverwriteBackup::restore(Error error) const {
  if (!image_->write(0, bytes_) || !image_->flush()) error.context("the image could not be restored either");
  return error;
}

}  // namespace rbdluks
