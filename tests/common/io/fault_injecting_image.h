// FaultInjectingImage: a RawImage decorator for tests that makes the image fail at the n-th change
// (write, write_zeroes, flush, resize, metadata), for files and RBD images alike.
//
// This is failure injection that nothing real produces on demand: a disk or a cluster does not fail
// exactly the 7th write of a keyslot change, and a crash does not pick which unflushed writes
// survive. The crash-point tests need exactly that, for every n, so it is simulated here, and only
// here; everything below the decorator is the real image.
//
// Two kinds of fault:
// - Mode::fail_once: the n-th change returns an error and does nothing; later ones work, as after a
//   transient I/O error that the code under test must recover from (e.g. by restoring what it
//   overwrote).
// - Mode::crash: the process dies at the n-th change: it and every later call fail. Writes since the
//   last flush reached the inner image (as a page cache holds them) but were not durable; after the
//   crash, keep_unflushed() decides which of them the storage happened to keep, in any combination.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "raw_image.h"

namespace rbdluks {

class FaultInjectingImage final : public RawImage {
 public:
  enum class Mode { fail_once, crash };

  // fault_at: which change (1 = the first) fails; 0 never, to count the changes of an operation.
  FaultInjectingImage(RawImage& inner, uint64_t fault_at, Mode mode);

  Result<uint64_t> size() override;
  Status read(uint64_t offset, std::span<uint8_t> out) override;
  Status write(uint64_t offset, std::span<const uint8_t> data) override;
  Status flush() override;
  Status write_zeroes(uint64_t offset, uint64_t length) override;
  Status resize(uint64_t new_size) override;
  // The allocation map and the traits are the inner image's: what the code under test decides from
  // them (which extents to touch, where to make holes) is part of what the crash points test.
  Result<std::vector<Extent>> allocated_extents(uint64_t offset, uint64_t length) override;
  Result<std::vector<Extent>> stored_extents(uint64_t offset, uint64_t length) override;
  uint64_t discard_unit() const override { return inner_.discard_unit(); }
  bool peers_read_holes_as_zeros() const override { return inner_.peers_read_holes_as_zeros(); }
  bool read_only() const override { return inner_.read_only(); }
  Result<std::optional<std::string>> get_metadata(const std::string& key) override;
  Status set_metadata(const std::string& key, const std::string& value) override;
  Result<bool> remove_metadata(const std::string& key) override;
  // The lock is the inner image's: taking it writes nothing to the image's data.
  Result<std::unique_ptr<HeaderLock>> lock_header(const std::string& purpose) override {
    return inner_.lock_header(purpose);
  }
  const std::string& name() const override { return inner_.name(); }

  // Changes seen so far, the failed one included.
  uint64_t changes() const { return changes_; }
  bool crashed() const { return crashed_; }
  // Writes made since the last flush, which a crash may lose.
  size_t unflushed_writes() const { return unflushed_.size(); }

  // After a crash: leaves on the inner image only the unflushed writes i with keep[i] (in the
  // order they were made); the others are undone. keep.size() must be unflushed_writes().
  Status keep_unflushed(const std::vector<bool>& keep);

 private:
  struct UnflushedWrite {
    uint64_t offset;
    std::vector<uint8_t> before;  // the bytes it overwrote
    std::vector<uint8_t> after;
  };

  // Counts a change; an error when this one is the fault or comes after a crash.
  Status change(const char* what);
  Status record_and_write(uint64_t offset, std::span<const uint8_t> data);

  RawImage& inner_;
  const uint64_t fault_at_;
  const Mode mode_;
  uint64_t changes_ = 0;
  bool crashed_ = false;
  std::vector<UnflushedWrite> unflushed_;
};

}  // namespace rbdluks
