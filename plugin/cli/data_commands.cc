// Commands that move plaintext: import, export, read, write, resize. Data streams in fixed-size
// chunks, so memory stays bounded whatever the image size.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "commands.h"
#include "progress.h"
#include "volume_access.h"

namespace rbdluks::cli {
namespace {

constexpr size_t kChunk = 4u << 20;

// A file descriptor for SRC/DST arguments where "-" means stdin/stdout.
class Stream {
 public:
  static Result<Stream> open_input(const std::string& path) {
    if (path == "-") return Stream(STDIN_FILENO, "standard input", false);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_error("open " + path);
    return Stream(fd, path, true);
  }
  static Result<Stream> open_output(const std::string& path) {
    if (path == "-") return Stream(STDOUT_FILENO, "standard output", false);
    // Plaintext of an encrypted volume is as sensitive as the volume: owner-only by default.
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return errno_error("create " + path);
    return Stream(fd, path, true);
  }
  Stream(Stream&& other) noexcept : fd_(other.fd_), name_(std::move(other.name_)), owned_(other.owned_) {
    other.owned_ = false;
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  Stream& operator=(Stream&&) = delete;
  ~Stream() {
    if (owned_) ::close(fd_);
  }

  // Size of a regular file, or nullopt for pipes and terminals.
  std::optional<uint64_t> regular_size() const {
    struct stat st {};
    if (fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return static_cast<uint64_t>(st.st_size);
  }

  // Fills out as far as the input goes; returns the bytes read (less than out.size() only at EOF).
  Result<size_t> read_full(std::span<uint8_t> out) {
    size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = ::read(fd_, out.data() + done, out.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno_error("read " + name_);
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }

  Status write_full(std::span<const uint8_t> data) {
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno_error("write " + name_);
      done += static_cast<size_t>(n);
    }
    return {};
  }

  Status finish() {
    if (owned_ && fsync(fd_) != 0 && errno != EINVAL) return errno_error("sync " + name_);
    return {};
  }

  const std::string& name() const { return name_; }

 private:
  Stream(int fd, std::string name, bool owned) : fd_(fd), name_(std::move(name)), owned_(owned) {}
  int fd_;
  std::string name_;
  bool owned_;
};

Status check_range(const std::string& target, uint64_t offset, uint64_t length, uint64_t size) {
  if (offset > size || length > size - offset) {
    return Error(Errc::usage, target + ": " + std::to_string(length) + " bytes at offset " + std::to_string(offset) +
                                  " do not fit in the plaintext size " + std::to_string(size));
  }
  return {};
}

bool show_progress(const CommandLine& cl) { return !cl.has("quiet") && isatty(STDERR_FILENO); }

// Copies up to `limit` bytes (or to EOF when limit is nullopt) from in to the image at offset.
Status copy_into(const CommandLine& cl, Stream& in, EncryptedImage& data, const std::string& target, uint64_t offset,
                 std::optional<uint64_t> limit) {
  RL_ASSIGN(const uint64_t size, data.size());
  Progress progress("import", limit.value_or(0), show_progress(cl));
  std::vector<uint8_t> chunk(kChunk);
  uint64_t done = 0;
  for (;;) {
    size_t want = kChunk;
    if (limit) want = static_cast<size_t>(std::min<uint64_t>(kChunk, *limit - done));
    if (want == 0) break;
    RL_ASSIGN(const size_t got, in.read_full(std::span(chunk).first(want)));
    if (got == 0) break;
    RL_TRY(check_range(target, offset + done, got, size));
    RL_TRY(data.write(offset + done, std::span<const uint8_t>(chunk).first(got)));
    done += got;
    progress.update(done);
    if (got < want) break;
  }
  if (limit && done != *limit) {
    return Error(Errc::failure,
                 in.name() + " ended after " + std::to_string(done) + " of " + std::to_string(*limit) + " bytes");
  }
  return data.flush();
}

Status copy_out(const CommandLine& cl, EncryptedImage& data, uint64_t offset, uint64_t length, Stream& out) {
  Progress progress("export", length, show_progress(cl));
  std::vector<uint8_t> chunk(kChunk);
  for (uint64_t done = 0; done < length;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, length - done));
    auto piece = std::span(chunk).first(n);
    RL_TRY(data.read(offset + done, piece));
    RL_TRY(out.write_full(piece));
    done += n;
    progress.update(done);
  }
  return out.finish();
}

}  // namespace

Status cmd_import(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 2, 2, "import SRC TARGET [--offset BYTES]"));
  RL_ASSIGN(auto offset, cl.get_size("offset"));
  RL_ASSIGN(auto in, Stream::open_input(args[0]));
  RL_ASSIGN(auto unlocked, unlock_volume(cl, args[1], OpenMode::read_write));
  const auto src_size = in.regular_size();
  if (src_size) {
    // Refuse before writing anything rather than fail half-way.
    RL_ASSIGN(const uint64_t size, unlocked.data->size());
    RL_TRY(check_range(args[1], offset.value_or(0), *src_size, size));
  }
  return copy_into(cl, in, *unlocked.data, args[1], offset.value_or(0), src_size);
}

Status cmd_export(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 2, 2, "export TARGET DST"));
  RL_ASSIGN(auto unlocked, unlock_volume(cl, args[0], OpenMode::read_only));
  RL_ASSIGN(const uint64_t size, unlocked.data->size());
  RL_ASSIGN(auto out, Stream::open_output(args[1]));
  return copy_out(cl, *unlocked.data, 0, size, out);
}

Status cmd_read(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "read TARGET --offset N --length L"));
  RL_ASSIGN(auto offset, cl.get_size("offset"));
  RL_ASSIGN(auto length, cl.get_size("length"));
  if (!offset || !length) return Error(Errc::usage, "read needs --offset N and --length L");
  RL_ASSIGN(auto unlocked, unlock_volume(cl, args[0], OpenMode::read_only));
  RL_ASSIGN(const uint64_t size, unlocked.data->size());
  RL_TRY(check_range(args[0], *offset, *length, size));
  RL_ASSIGN(auto out, Stream::open_output("-"));
  return copy_out(cl, *unlocked.data, *offset, *length, out);
}

Status cmd_write(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "write TARGET --offset N [--length L]"));
  RL_ASSIGN(auto offset, cl.get_size("offset"));
  RL_ASSIGN(auto length, cl.get_size("length"));
  if (!offset) return Error(Errc::usage, "write needs --offset N");
  RL_ASSIGN(auto unlocked, unlock_volume(cl, args[0], OpenMode::read_write));
  if (length) {
    RL_ASSIGN(const uint64_t size, unlocked.data->size());
    RL_TRY(check_range(args[0], *offset, *length, size));
  }
  RL_ASSIGN(auto in, Stream::open_input("-"));
  return copy_into(cl, in, *unlocked.data, args[0], *offset, length);
}

Status cmd_resize(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "resize TARGET --size BYTES"));
  RL_ASSIGN(auto size, cl.get_size("size"));
  if (!size) return Error(Errc::usage, "resize needs --size BYTES (the new plaintext size)");
  RL_ASSIGN(auto loaded, load_volume_to_change(cl, args[0], "resize"));
  const VolumeLayout& layout = loaded.volume->layout();
  if (*size % layout.sector_size != 0) {
    return Error(Errc::usage,
                 "--size must be a multiple of the sector size (" + std::to_string(layout.sector_size) + ")");
  }
  if (layout.data_size) {
    return Error(Errc::unsupported,
                 args[0] + ": the data segment has a fixed size; only dynamic segments can be resized");
  }
  RL_TRY(loaded.image->resize(layout.data_offset + *size));
  RL_TRY(loaded.header_lock->release());
  inform(cl, "resized " + args[0] + " to " + std::to_string(*size) + " bytes of plaintext");
  return {};
}

}  // namespace rbdluks::cli
