// EncryptedImage: the plaintext view of a LUKS data segment on a RawImage, synchronous and thread-safe.
//
// Used by the CLI for reading and writing unlocked images; the asynchronous librbd layer shares its
// building blocks (sector_codec, range_lock) rather than this class. Plaintext offset 0
// is raw offset data_offset. Requests of any alignment are accepted: partial sectors are read,
// merged and re-encrypted under a range lock, so concurrent overlapping requests never lose bytes.
// The caller's buffers are never modified by writes (encryption happens in pooled bounce buffers),
// and large requests go in pieces of at most one bounce buffer, so memory stays bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "buffer_pool.h"
#include "extent.h"
#include "range_lock.h"
#include "raw_image.h"
#include "result.h"
#include "sector_codec.h"
#include "xts_cipher.h"

namespace rbdluks {

struct BounceBufferConfig {
  size_t buffer_bytes = size_t{4} << 20;  // also the largest piece a request is split into
  size_t count = 4;                       // at most this many pieces are encoded at once
};

class EncryptedImage {
 public:
  // sector_size is 512, 1024, 2048 or 4096 (as validated by the LUKS header loader), data_offset a
  // multiple of 512. data_size is the header's fixed segment size, or nullopt for a segment that
  // runs to the end of the raw image. raw must outlive this object.
  EncryptedImage(RawImage& raw, std::shared_ptr<const XtsCipher> cipher, uint64_t data_offset, uint32_t sector_size,
                 std::optional<uint64_t> data_size, BounceBufferConfig bounce = {});
  EncryptedImage(const EncryptedImage&) = delete;
  EncryptedImage& operator=(const EncryptedImage&) = delete;

  // Plaintext bytes: the fixed data size, or what follows data_offset rounded down to whole sectors.
  Result<uint64_t> size();

  Status read(uint64_t offset, std::span<uint8_t> out);
  Status write(uint64_t offset, std::span<const uint8_t> data);
  // The range reads as zeros afterwards. Partial sectors are re-encrypted with zeros; whole sectors
  // go to RawImage::write_zeroes (a punched hole, an RBD discard), which reads back as holes.
  Status write_zeroes(uint64_t offset, uint64_t length);
  // The same as write_zeroes: a discarded range must never show stale plaintext, and zeroed whole
  // sectors already release their space where the backend can.
  Status discard(uint64_t offset, uint64_t length);
  Status flush();
  // The parts of [offset, offset + length) whose sectors may hold data, from the raw image's map
  // (RawImage::allocated_extents) shifted past the header; everything else reads as zeros.
  Result<std::vector<Extent>> allocated_extents(uint64_t offset, uint64_t length);

 private:
  Status check_range(const char* what, uint64_t offset, uint64_t length);
  // Reads and decrypts the span's sectors into buffer (span.size() bytes).
  Status read_sectors(const SectorSpan& span, std::span<uint8_t> buffer);
  // Reads and decrypts the partly covered sectors of span into their places in buffer.
  Status read_partial_sectors(const SectorSpan& span, std::span<uint8_t> buffer);
  Status zero_range(uint64_t offset, uint64_t length);

  RawImage& raw_;
  const std::shared_ptr<const XtsCipher> cipher_;
  const uint64_t data_offset_;
  const uint32_t sector_size_;
  const std::optional<uint64_t> data_size_;
  BufferPool bounce_;
  RangeLock sectors_locked_;
};

}  // namespace rbdluks
