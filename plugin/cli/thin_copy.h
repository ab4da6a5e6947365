// Plaintext copies between a Stream and an unlocked image that keep thin images thin: all-zero
// blocks of the source are not written where the image holds nothing (and are zeroed where it
// does), holes of a sparse source file are not read, unallocated parts of the image are not read,
// and a regular output file gets holes where the plaintext is zeros. Several chunks are in flight
// at once, as `rbd import` and `rbd export` keep several requests in flight.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "encrypted_image.h"
#include "result.h"
#include "stream.h"

namespace rbdluks::cli {

struct CopySettings {
  // All-zero blocks of this many bytes (aligned in the image or the output file) are holes;
  // 0 writes every byte.
  uint64_t sparse_size = 4096;
  bool progress = false;
  std::string label = "import";
  // Import: where zeros replace data the image held, whole units of the raw image (RawImage::
  // discard_unit, at raw offset data_offset + plaintext offset) are discarded; the rest gets
  // encrypted zeros, which read as zeros in every reader (design.md, "Holes").
  uint64_t discard_unit = 0;
  uint64_t data_offset = 0;
};

// A usage error naming target when `length` bytes at plaintext `offset` pass its plaintext `size`.
Status check_fits(const std::string& target, uint64_t offset, uint64_t length, uint64_t size);

// Writes in's bytes (to its end, or exactly `limit` of them) into data at plaintext `offset`.
// `target` names the image in messages. More bytes than fit is a usage error, found before writing
// when the source is a regular file.
Status import_plaintext(Stream& in, EncryptedImage& data, const std::string& target, uint64_t offset,
                        std::optional<uint64_t> limit, const CopySettings& settings);

// Writes data's plaintext [offset, offset + length) to out: every byte in order to a pipe or
// terminal, with holes for zeros to a regular file.
Status export_plaintext(EncryptedImage& data, uint64_t offset, uint64_t length, Stream& out,
                        const CopySettings& settings);

}  // namespace rbdluks::cli
