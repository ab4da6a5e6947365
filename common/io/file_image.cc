// FileImage: pread/pwrite on a local file; metadata in a JSON sidecar replaced atomically.
#include "file_image.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "file_extents.h"
#include "file_header_lock.h"
#include "printable_text.h"

namespace rbdluks {
namespace {

class FileImage final : public RawImage {
 public:
  FileImage(int fd, std::string path, bool read_only)
      : fd_(fd), path_(std::move(path)), name_("file:" + path_), read_only_(read_only) {}
  ~FileImage() override { close(fd_); }
  FileImage(const FileImage&) = delete;
  FileImage& operator=(const FileImage&) = delete;

  Result<uint64_t> size() override {
    struct stat st {};
    if (fstat(fd_, &st) != 0) return errno_error("stat " + name_);
    if (S_ISBLK(st.st_mode)) {
      const off_t end = lseek(fd_, 0, SEEK_END);
      if (end < 0) return errno_error("seek " + name_);
      return static_cast<uint64_t>(end);
    }
    return static_cast<uint64_t>(st.st_size);
  }

  Status read(uint64_t offset, std::span<uint8_t> out) override {
    size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_error("read " + name_ + " at " + std::to_string(offset + done));
      }
      if (n == 0) {
        return Error(Errc::failure, "read " + name_ + ": " + std::to_string(out.size()) + " bytes at " +
                                        std::to_string(offset) + " pass the end of the image");
      }
      done += static_cast<size_t>(n);
    }
    return {};
  }

  Status write(uint64_t offset, std::span<const uint8_t> data) override {
    if (read_only_) return Error(Errc::failure, name_ + " is open read-only");
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_error("write " + name_ + " at " + std::to_string(offset + done));
      }
      done += static_cast<size_t>(n);
    }
    return {};
  }

  Status write_zeroes(uint64_t offset, uint64_t length) override {
    if (read_only_) return Error(Errc::failure, name_ + " is open read-only");
    RL_ASSIGN(const uint64_t end, size());
    // Punching holes keeps sparse files sparse; past the end of the file a hole would not extend it.
    if (offset + length <= end && fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                                            static_cast<off_t>(length)) == 0) {
      return {};
    }
    return RawImage::write_zeroes(offset, length);
  }

  Result<std::vector<Extent>> allocated_extents(uint64_t offset, uint64_t length) override {
    return file_data_extents(fd_, offset, length, name_);
  }

  Status flush() override {
    if (!read_only_ && fdatasync(fd_) != 0) return errno_error("flush " + name_);
    return {};
  }

  Status resize(uint64_t new_size) override {
    if (read_only_) return Error(Errc::failure, name_ + " is open read-only");
    if (ftruncate(fd_, static_cast<off_t>(new_size)) != 0) return errno_error("resize " + name_);
    return {};
  }

  bool read_only() const override { return read_only_; }
  const std::string& name() const override { return name_; }

  Result<std::unique_ptr<HeaderLock>> lock_header(const std::string& /*purpose*/) override {
    return lock_file_header(fd_, name_);
  }

  Result<std::optional<std::string>> get_metadata(const std::string& key) override {
    RL_ASSIGN(auto meta, load_metadata());
    auto it = meta.find(key);
    if (it == meta.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->get<std::string>());
  }

  Status set_metadata(const std::string& key, const std::string& value) override {
    // The sidecar is JSON, which holds text only (RBD metadata takes any bytes).
    if (!is_valid_utf8(key) || !is_valid_utf8(value)) {
      return Error(Errc::usage, "metadata of file images must be UTF-8: " + printable(key) + " = " + printable(value));
    }
    RL_ASSIGN(auto meta, load_metadata());
    meta[key] = value;
    return store_metadata(meta);
  }

  Result<bool> remove_metadata(const std::string& key) override {
    RL_ASSIGN(auto meta, load_metadata());
    if (meta.erase(key) == 0) return false;
    RL_TRY(store_metadata(meta));
    return true;
  }

 private:
  std::string sidecar() const { return path_ + ".rbd-luks-meta"; }

  Result<nlohmann::json> load_metadata() const {
    // Only a sidecar that is not there is empty metadata: one that cannot be read is an error, or a
    // change would write a new sidecar without what the old one held.
    struct stat st {};
    if (::stat(sidecar().c_str(), &st) != 0) {
      if (errno == ENOENT) return nlohmann::json::object();
      return errno_error("stat " + sidecar());
    }
    std::ifstream in(sidecar());
    if (!in) return Error(Errc::failure, "cannot read " + sidecar());
    auto meta = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!meta.is_object()) return Error(Errc::failure, "metadata file " + sidecar() + " is not a JSON object");
    for (const auto& [k, v] : meta.items()) {
      if (!v.is_string())
        return Error(Errc::failure, "metadata file " + sidecar() + ": value of " + k + " is not a string");
    }
    return meta;
  }

  Status store_metadata(const nlohmann::json& meta) const {
    if (read_only_) return Error(Errc::failure, name_ + " is open read-only");
    const std::string tmp = sidecar() + ".tmp";
    const std::string text = meta.dump(2) + "\n";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return errno_error("create " + tmp);
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
    close(fd);
    if (!written || rename(tmp.c_str(), sidecar().c_str()) != 0) {
      unlink(tmp.c_str());
      return errno_error("write " + sidecar());
    }
    // The rename is durable once the directory is: runs that record their progress here rely on it.
    const std::string dir = std::filesystem::path(sidecar()).parent_path().string();
    const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return errno_error("open the directory of " + sidecar());
    const bool synced = fsync(dir_fd) == 0;
    close(dir_fd);
    if (!synced) return errno_error("sync the directory of " + sidecar());
    return {};
  }

  int fd_;
  std::string path_;
  std::string name_;
  bool read_only_;
};

}  // namespace

Result<std::unique_ptr<RawImage>> open_file_image(const std::string& path, OpenMode mode) {
  const bool ro = mode == OpenMode::read_only;
  const int fd = ::open(path.c_str(), (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) {
    Error e = errno_error("open file:" + path);
    if (errno == ENOENT) return Error(Errc::not_found, e.message());
    return e;
  }
  return std::unique_ptr<RawImage>(new FileImage(fd, path, ro));
}

Result<std::unique_ptr<RawImage>> create_file_image(const std::string& path, uint64_t size) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error("create file:" + path);
  auto image = std::unique_ptr<RawImage>(new FileImage(fd, path, false));
  RL_TRY(image->resize(size));
  return image;
}

}  // namespace rbdluks
