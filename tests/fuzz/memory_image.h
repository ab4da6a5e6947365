// MemoryImage: a read-only RawImage whose first bytes are held in memory and whose rest, up to a
// larger size it reports, reads as zeros, like a sparse image. The harnesses give it the fuzz
// input (or a header built from it) without touching a file, and the reported size is large enough
// that the size checks of the header readers pass and the parsing behind them is reached.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "raw_image.h"

namespace rbdluks::fuzz {

class MemoryImage final : public RawImage {
 public:
  // bytes: the start of the image; size: what size() reports (at least bytes.size()).
  MemoryImage(std::vector<uint8_t> bytes, uint64_t size);

  Result<uint64_t> size() override { return size_; }
  Status read(uint64_t offset, std::span<uint8_t> out) override;
  Status write(uint64_t offset, std::span<const uint8_t> data) override;
  Status flush() override;
  Status resize(uint64_t new_size) override;
  bool read_only() const override { return true; }
  Result<std::optional<std::string>> get_metadata(const std::string& key) override;
  Status set_metadata(const std::string& key, const std::string& value) override;
  Result<bool> remove_metadata(const std::string& key) override;
  Result<std::unique_ptr<HeaderLock>> lock_header(const std::string& purpose) override;
  const std::string& name() const override { return name_; }

 private:
  std::vector<uint8_t> bytes_;
  uint64_t size_;
  std::string name_ = "memory:fuzz-input";
};

}  // namespace rbdluks::fuzz
