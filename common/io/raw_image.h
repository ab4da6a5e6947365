// RawImage: the bytes of an image as they are stored, header and ciphertext alike.
//
// The LUKS engine and the data path only talk to this interface. Implementations: a local file
// (file_image) and an RBD image (in plugin/rbd/). Reads and writes are positional and whole: a read that
// would pass the end of the image is an error, never a short read.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "extent.h"
#include "header_lock.h"
#include "result.h"

namespace rbdluks {

class RawImage {
 public:
  virtual ~RawImage() = default;

  virtual Result<uint64_t> size() = 0;
  virtual Status read(uint64_t offset, std::span<uint8_t> out) = 0;
  virtual Status write(uint64_t offset, std::span<const uint8_t> data) = 0;
  virtual Status flush() = 0;
  // Makes [offset, offset + length) read back as zeros. The default writes zeros; backends override it
  // with something cheaper (hole punching, RBD discard/write-zeroes).
  virtual Status write_zeroes(uint64_t offset, uint64_t length);
  // The parts of [offset, offset + length) that may hold data, in order; the rest reads as zeros and
  // takes no space. Backends answer from their own map, as coarse as it is (whole RBD objects,
  // filesystem blocks); the default is the whole range.
  virtual Result<std::vector<Extent>> allocated_extents(uint64_t offset, uint64_t length);
  // The same, counting only what this image stores itself: a clone's parent's data is left out, as
  // `rbd du` leaves it out. The default: allocated_extents.
  virtual Result<std::vector<Extent>> stored_extents(uint64_t offset, uint64_t length) {
    return allocated_extents(offset, length);
  }
  // The aligned unit that write_zeroes removes when it covers it whole, so that it takes no space and
  // reads as zeros through librbd's native encryption too: an RBD object. 0 where there is none.
  virtual uint64_t discard_unit() const { return 0; }
  // Whether librbd's native encryption, the other reader of LUKS2 on this backend, reads a range
  // never written as zeros (it returns zeros where RADOS reports a hole), so that a copy may leave
  // zeros unwritten. Not so for files: cryptsetup decrypts a file's holes into noise.
  virtual bool peers_read_holes_as_zeros() const { return false; }
  virtual Status resize(uint64_t new_size) = 0;
  virtual bool read_only() const = 0;
  // A snapshot: the image as it was once. Its metadata is the image's own, as it is now (RBD keeps
  // no metadata per snapshot), so it may describe a later state than the snapshot's data.
  virtual bool snapshot() const { return false; }

  // Small key/value metadata kept beside the image (RBD image metadata; a sidecar for files).
  // get_metadata returns std::nullopt when the key is absent. remove_metadata says whether the key
  // was there; removing an absent one is not an error, since callers clearing optional keys rely on it.
  virtual Result<std::optional<std::string>> get_metadata(const std::string& key) = 0;
  virtual Status set_metadata(const std::string& key, const std::string& value) = 0;
  virtual Result<bool> remove_metadata(const std::string& key) = 0;

  // The right to change the LUKS header and its metadata (header_lock.h), waited for as that says;
  // `purpose` ("rbd-luks keyslot add") tells clients that wait meanwhile who holds it. The lock
  // must not outlive this image.
  virtual Result<std::unique_ptr<HeaderLock>> lock_header(const std::string& purpose) = 0;

  // Where this image is, for error messages: "file:/tmp/x.img", "rbd:pool/image".
  virtual const std::string& name() const = 0;
};

}  // namespace rbdluks
