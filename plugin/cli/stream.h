// Stream: the SRC or DST of import, export, read and write, a file or "-" (stdin/stdout). Regular
// files are read and written by position, so that copies can skip their holes; pipes in order.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "extent.h"
#include "result.h"

namespace rbdluks::cli {

class Stream {
 public:
  static Result<Stream> open_input(const std::string& path);
  // A new file is created owner-only: plaintext of an encrypted volume is as sensitive as the volume.
  static Result<Stream> open_output(const std::string& path);
  Stream(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  Stream& operator=(Stream&&) = delete;
  ~Stream();

  // The size of a regular file named on the command line, or nullopt for pipes, terminals, devices
  // and stdin/stdout (whose position is the shell's, so they are read and written in order).
  std::optional<uint64_t> regular_size() const;

  // The next bytes in order; fills out as far as the input goes (less only at its end).
  Result<size_t> read_full(std::span<uint8_t> out);
  // Bytes of a regular file at a position; reaching its end first is an error.
  Status read_at(uint64_t offset, std::span<uint8_t> out);
  // Where a regular file holds data within [offset, offset + length) (file_extents.h).
  Result<std::vector<Extent>> data_extents(uint64_t offset, uint64_t length) const;

  Status write_full(std::span<const uint8_t> data);
  Status write_at(uint64_t offset, std::span<const uint8_t> data);
  // Sets a regular file's size: what was never written up to it reads as zeros and takes no space.
  Status set_size(uint64_t size);
  // fsync for a file this opened; nothing for stdin/stdout.
  Status finish();

  const std::string& name() const { return name_; }

 private:
  Stream(int fd, std::string name, bool owned) : fd_(fd), name_(std::move(name)), owned_(owned) {}
  int fd_;
  std::string name_;
  bool owned_;
};

}  // namespace rbdluks::cli
