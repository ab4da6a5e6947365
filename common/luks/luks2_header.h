// A whole LUKS2 header (binary header + JSON metadata, kept twice) on a RawImage: reading it the way
// cryptsetup does (both copies checked, the valid one with the higher seqid wins) and writing it
// crash-safely (secondary copy, flush, primary copy, flush).
//
// Image layout: primary copy at 0 and secondary copy at hdr_size (each hdr_size bytes: 4096-byte
// binary header, then the JSON area), then the keyslots area of config.keyslots_size bytes at
// 2 * hdr_size, then the data segment.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "luks2_binary_header.h"
#include "luks2_metadata.h"
#include "raw_image.h"
#include "result.h"

namespace rbdluks {

struct Luks2Header {
  // What both copies share (seqid, label, uuid, ...); salt is the primary copy's. magic and
  // hdr_offset are set per copy when writing.
  Luks2BinaryHeader binary;
  Luks2Metadata metadata;
  uint64_t hdr_size = kLuks2MinHdrSize;  // must equal binary.hdr_size
  std::array<uint8_t, kLuks2SaltSize> secondary_salt{};
};

struct Luks2LoadResult {
  Luks2Header header;
  bool primary_valid = false;  // false: the copy is damaged or older, write_luks2_header repairs it
  bool secondary_valid = false;
  std::string damage;  // why a copy was not used, empty when both are valid and current
};

// Reads both copies (the secondary at the primary's hdr_size, or at the offsets cryptsetup probes when
// the primary is unusable) and returns the valid one with the higher seqid. Errc::bad_header with the
// reasons for both copies when neither is valid, or when the image is smaller than the header and
// keyslots area; Errc::unsupported when the current copy is valid LUKS2 using a feature we lack.
Result<Luks2LoadResult> read_luks2_header(RawImage& image);

// Validates header.metadata, then writes both copies with seqid + 1 and fresh checksums: the
// secondary first, flushed, then the primary, flushed. On success header.binary.seqid is the new
// seqid. Also rewrites a damaged copy.
Status write_luks2_header(RawImage& image, Luks2Header& header);

// A fresh header with no keyslots, segments or digests yet: random salts, checksum sha256, seqid 1,
// empty label, config sized for hdr_size and keyslots_size. uuid empty: a random version 4 UUID.
// Errc::usage for an invalid size or uuid.
Result<Luks2Header> new_luks2_header(uint64_t hdr_size, uint64_t keyslots_size, std::string uuid);

// Where the keyslots area starts: right after the two header copies.
uint64_t luks2_keyslots_area_offset(const Luks2Header& header);

// Bytes cryptsetup reserves for a keyslot's AF-split key material: key_bytes * stripes rounded up to
// 4096.
uint64_t luks2_keyslot_area_size(uint64_t key_bytes, uint32_t stripes);

// The first 4096-aligned gap of length bytes (rounded up to 4096) in the keyslots area not used by
// any keyslot, as cryptsetup's LUKS2_find_area_gap; Errc::no_space when there is none.
Result<uint64_t> luks2_find_free_area(const Luks2Metadata& metadata, uint64_t hdr_size, uint64_t length);

// The largest 4096-aligned free part of the keyslots area as (offset, size), size 0 when there is
// none, as cryptsetup's LUKS2_find_area_max_gap (where a reencryption keeps its checksums).
std::pair<uint64_t, uint64_t> luks2_largest_free_area(const Luks2Metadata& metadata, uint64_t hdr_size);

}  // namespace rbdluks
