// The header lock of image files: two opens of one file exclude each other until the holder
// releases (or goes), and the one that waits gives up after RBD_LUKS_LOCK_TIMEOUT with a one-line
// message. The processes-and-races side is tests/plugin/cli/file/header_lock.sh.
#include "file_header_lock.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "file_image.h"
#include "test_support.h"

namespace rbdluks {
namespace {

// RBD_LUKS_LOCK_TIMEOUT for the life of a test.
class LockTimeout {
 public:
  explicit LockTimeout(const char* seconds) { setenv("RBD_LUKS_LOCK_TIMEOUT", seconds, 1); }
  ~LockTimeout() { unsetenv("RBD_LUKS_LOCK_TIMEOUT"); }
  LockTimeout(const LockTimeout&) = delete;
  LockTimeout& operator=(const LockTimeout&) = delete;
};

TEST(FileHeaderLock, SecondOpenWaitsUntilTheFirstReleases) {
  TempDir dir;
  const std::string path = dir.file("image");
  auto first = create_file_image(path, 1 << 20);
  ASSERT_TRUE(first.ok()) << first.error().message();
  auto second = open_file_image(path, OpenMode::read_write);
  ASSERT_TRUE(second.ok()) << second.error().message();
  const LockTimeout no_wait("0");

  auto held = (*first)->lock_header("test");
  ASSERT_TRUE(held.ok()) << held.error().message();
  auto refused = (*second)->lock_header("test");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message(),
            "file:" + path +
                ": another client is changing the LUKS header (another process holds an "
                "flock on the file); gave up after 0 s (RBD_LUKS_LOCK_TIMEOUT sets the wait)");

  ASSERT_TRUE((*held)->release());
  auto granted = (*second)->lock_header("test");
  ASSERT_TRUE(granted.ok()) << granted.error().message();
  granted->reset();  // released by its destructor
  EXPECT_TRUE((*first)->lock_header("test").ok());
}

TEST(FileHeaderLock, ABadTimeoutIsAUsageError) {
  TempDir dir;
  auto image = create_file_image(dir.file("image"), 1 << 20);
  ASSERT_TRUE(image.ok()) << image.error().message();
  const LockTimeout bad("soon");
  auto lock = (*image)->lock_header("test");
  ASSERT_FALSE(lock.ok());
  EXPECT_TRUE(lock.error().is(Errc::usage)) << lock.error().message();
}

}  // namespace
}  // namespace rbdluks
