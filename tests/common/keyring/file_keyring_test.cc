// FileKeyring on real files: store() creates a key file and never replaces one, not even when many
// stores of the same path race; the reference it returns is absolute; discard() removes only a file
// that still holds the key this store wrote.
#include "file_keyring.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "test_support.h"

namespace rbdluks {
namespace {

SecureBuffer random_key() {
  const auto bytes = random_bytes(64);
  return SecureBuffer::copy_of(std::span<const uint8_t>(bytes));
}

TEST(FileKeyring, StoresA0600FileAndNeverReplacesAnExistingOne) {
  TempDir dir;
  auto keyring = make_file_keyring();
  const SecureBuffer key = random_key();
  auto stored = keyring->store(key.span(), dir.file("new.key"));
  ASSERT_TRUE(stored) << stored.error().message();
  EXPECT_EQ(stored->str(), "file:" + dir.file("new.key"));
  struct stat st {};
  ASSERT_EQ(stat(dir.file("new.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_TRUE(keyring->fetch(stored->locator)->equals(key.span()));

  const SecureBuffer other = random_key();
  auto again = keyring->store(other.span(), dir.file("new.key"));
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(Errc::key_unavailable));
  EXPECT_NE(again.error().message().find("already exists; not overwriting it"), std::string::npos);
  EXPECT_TRUE(keyring->fetch(stored->locator)->equals(key.span()));

  // A dangling symlink is not a free name: storing through it would create a file elsewhere.
  ASSERT_EQ(symlink(dir.file("elsewhere").c_str(), dir.file("link.key").c_str()), 0);
  EXPECT_FALSE(keyring->store(key.span(), dir.file("link.key")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("elsewhere")));
}

TEST(FileKeyring, RacingStoresOfOnePathLeaveExactlyOneWinnerAndItsKey) {
  TempDir dir;
  constexpr int kThreads = 6;
  constexpr int kRounds = 50;
  for (int round = 0; round < kRounds; ++round) {
    const std::string path = dir.file("race" + std::to_string(round) + ".key");
    std::vector<SecureBuffer> keys;
    for (int i = 0; i < kThreads; ++i) keys.push_back(random_key());
    std::atomic<int> ready{0};
    std::vector<int> won(kThreads, 0);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        auto keyring = make_file_keyring();
        ++ready;
        while (ready.load() < kThreads) std::this_thread::yield();  // start together
        won[i] = keyring->store(keys[i].span(), path) ? 1 : 0;
      });
    }
    for (auto& thread : threads) thread.join();
    int winners = 0;
    int winner = -1;
    for (int i = 0; i < kThreads; ++i) {
      winners += won[i];
      if (won[i] != 0) winner = i;
    }
    ASSERT_EQ(winners, 1) << "round " << round << ": more than one store of " << path << " succeeded";
    auto held = make_file_keyring()->fetch(path);
    ASSERT_TRUE(held) << held.error().message();
    EXPECT_TRUE(held->equals(keys[winner].span())) << "round " << round << ": the file holds another store's key";
  }
}

TEST(FileKeyring, RecordsAnAbsolutePath) {
  TempDir dir;
  const auto previous = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  auto stored = make_file_keyring()->store(random_key().span(), "relative.key");
  std::filesystem::current_path(previous);
  ASSERT_TRUE(stored) << stored.error().message();
  EXPECT_EQ(stored->locator, dir.file("relative.key"));
}

TEST(FileKeyring, DiscardRemovesOnlyAFileThatStillHoldsTheStoredKey) {
  TempDir dir;
  auto keyring = make_file_keyring();
  const SecureBuffer mine = random_key();
  auto stored = keyring->store(mine.span(), dir.file("k"));
  ASSERT_TRUE(stored);
  // Someone else's key took the name meanwhile (written the way a second store would).
  const SecureBuffer theirs = random_key();
  ASSERT_EQ(unlink(dir.file("k").c_str()), 0);
  ASSERT_TRUE(make_file_keyring()->store(theirs.span(), dir.file("k")));
  auto discarded = keyring->discard(stored->locator, mine.span());
  EXPECT_FALSE(discarded);
  EXPECT_NE(discarded.error().message().find("left in place"), std::string::npos) << discarded.error().message();
  EXPECT_TRUE(keyring->fetch(stored->locator)->equals(theirs.span()));

  EXPECT_TRUE(keyring->discard(stored->locator, theirs.span()));
  EXPECT_FALSE(std::filesystem::exists(dir.file("k")));
  EXPECT_TRUE(keyring->discard(stored->locator, theirs.span())) << "a key that is gone is not an error";
}

}  // namespace
}  // namespace rbdluks
