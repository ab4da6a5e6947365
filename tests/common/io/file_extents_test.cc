// file_data_extents on a real sparse file: the filesystem's SEEK_DATA/SEEK_HOLE map.
#include "file_extents.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <filesystem>
#include <vector>

namespace rbdluks {
namespace {

constexpr uint64_t kMiB = 1 << 20;

class FileExtentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() / ("rbd-luks-extents-" + std::to_string(getpid()));
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override {
    ::close(fd_);
    std::filesystem::remove(path_);
  }
  void write_at(uint64_t offset, size_t length) {
    const std::vector<uint8_t> bytes(length, 0x5a);
    ASSERT_EQ(pwrite(fd_, bytes.data(), length, static_cast<off_t>(offset)), static_cast<ssize_t>(length));
  }
  std::filesystem::path path_;
  int fd_ = -1;
};

TEST_F(FileExtentsTest, FindsTheWrittenPartsOfASparseFile) {
  ASSERT_EQ(ftruncate(fd_, 64 * kMiB), 0);
  write_at(4 * kMiB, 64 * 1024);
  write_at(40 * kMiB, kMiB);
  auto extents = file_data_extents(fd_, 0, 64 * kMiB, "test file");
  ASSERT_TRUE(extents) << extents.error().message();
  if (extents->size() == 1 && (*extents)[0].length == 64 * kMiB) GTEST_SKIP() << "the filesystem keeps no hole map";
  // Filesystems report data in blocks of their own: the written bytes must be inside, the holes out.
  ASSERT_EQ(extents->size(), 2u);
  EXPECT_LE((*extents)[0].offset, 4 * kMiB);
  EXPECT_GE((*extents)[0].end(), 4 * kMiB + 64 * 1024);
  EXPECT_LT((*extents)[0].end(), 40 * kMiB);
  EXPECT_LE((*extents)[1].offset, 40 * kMiB);
  EXPECT_GE((*extents)[1].end(), 41 * kMiB);
  EXPECT_LE(total_length(*extents), 2 * kMiB);

  auto clipped = file_data_extents(fd_, 40 * kMiB + 100, 1000, "test file");
  ASSERT_TRUE(clipped);
  EXPECT_EQ(*clipped, (std::vector<Extent>{{40 * kMiB + 100, 1000}}));
  auto hole = file_data_extents(fd_, 50 * kMiB, kMiB, "test file");
  ASSERT_TRUE(hole);
  EXPECT_TRUE(hole->empty());
}

TEST_F(FileExtentsTest, APipeIsAllData) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  auto extents = file_data_extents(fds[0], 0, 100, "pipe");
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_TRUE(extents) << extents.error().message();
  EXPECT_EQ(*extents, (std::vector<Extent>{{0, 100}}));
}

}  // namespace
}  // namespace rbdluks
