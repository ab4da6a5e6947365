// WindowImage: part of another raw image, seen read-only as a whole image of its own.
//
// A decryption in place (common/reencrypt/decryption.h) keeps a copy of the LUKS header past the
// end of the data while the data moves over the original; the LUKS code reads that copy through a
// window as if it were at offset 0.
#pragma once

#include <cstdint>
#include <string>

#include "raw_image.h"

namespace rbdluks {

class WindowImage final : public RawImage {
 public:
  // [offset, offset + length) of base, which must outlive the window.
  WindowImage(RawImage& base, uint64_t offset, uint64_t length);

  Result<uint64_t> size() override { return length_; }
  Status read(uint64_t offset, std::span<uint8_t> out) override;
  Status write(uint64_t offset, std::span<const uint8_t> data) override;
  Status flush() override { return {}; }
  Status resize(uint64_t new_size) override;
  bool read_only() const override { return true; }
  Result<std::optional<std::string>> get_metadata(const std::string& key) override;
  Status set_metadata(const std::string& key, const std::string& value) override;
  Result<bool> remove_metadata(const std::string& key) override;
  Result<std::unique_ptr<HeaderLock>> lock_header(const std::string& purpose) override;
  const std::string& name() const override { return name_; }

 private:
  Error read_only_error() const;

  RawImage& base_;
  const uint64_t offset_;
  const uint64_t length_;
  const std::string name_;
};

}  // namespace rbdluks
