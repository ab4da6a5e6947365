// Stress tests of EncryptedRbdImage on the model of stress_model.h, each for a bounded time
// (RBDLUKS_STRESS_SECONDS, else a few seconds): all eight threads on one open image; and the
// threads split between this process and rbd_test_client, two clients of one image whose writes
// share sectors (half of the fine region's writes are 512-byte blocks inside 4 KiB sectors), where
// a read-modify-write of a partial sector must not lose the other client's bytes of that sector.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>

#include "encrypted_rbd_fixture.h"
#include "encrypted_rbd_image.h"
#include "stress_model.h"
#include "test_client.h"

namespace rbdluks {
namespace {

using namespace rbdluks::testing;

int stress_seconds(int fallback) {
  const char* env = std::getenv("RBDLUKS_STRESS_SECONDS");
  return env != nullptr ? std::atoi(env) : fallback;
}

class EncryptedRbdStressTest : public EncryptedRbdFixture {
 protected:
  // Threads 0-3 of the model here and 4-7 in rbd_test_client, on image `name` for `seconds`; the
  // other client writes its model to a file when done, and the bytes must match both models.
  void run_two_clients(const std::string& name, int seconds) {
    auto image = EncryptedRbdImage::open(io(), name, std::nullopt, false, bytes_of(kPassphrase));
    ASSERT_TRUE(image) << image.error().message();
    constexpr int kSplit = kStressThreads / 2;
    const std::string model_file = ::testing::TempDir() + "rbd-luks-stress-model-" + std::to_string(getpid());
    const pid_t other = start_test_client(
        {"stress", name, std::to_string(seconds), std::to_string(kSplit), std::to_string(kStressThreads), model_file});
    ASSERT_GT(other, 0);
    Stress stress(**image);
    run_stress_threads(stress, 0, kSplit, seconds);
    EXPECT_EQ(wait_test_client(other), 0) << "the other client failed (its stderr says why)";

    std::ifstream in(model_file, std::ios::binary);
    const std::vector<uint8_t> other_model{std::istreambuf_iterator<char>(in), {}};
    std::remove(model_file.c_str());
    ASSERT_EQ(other_model.size(), kStressImageBytes) << "the other client wrote no model";
    stress.merge(other_model, kSplit, kStressThreads);

    EXPECT_EQ(stress.failures(), 0) << stress.first_failure();
    EXPECT_GT(stress.operations(), 100u) << "the test did too little to mean anything";
    EXPECT_EQ(stress.check_final(), "");
    std::cout << "[ stress   ] " << stress.operations() << " requests in " << seconds << " s from this client, "
              << kSplit << " threads in each of two\n";
  }
};

TEST_F(EncryptedRbdStressTest, OverlappingUnalignedRequestsLoseNoBytes) {
  const int seconds = stress_seconds(5);
  const std::string name = create_luks_image(kStressImageBytes);
  auto image = EncryptedRbdImage::open(io(), name, std::nullopt, false, bytes_of(kPassphrase));
  ASSERT_TRUE(image) << image.error().message();

  Stress stress(**image);
  run_stress_threads(stress, 0, kStressThreads, seconds);

  EXPECT_EQ(stress.failures(), 0) << stress.first_failure();
  EXPECT_GT(stress.operations(), 100u) << "the test did too little to mean anything";
  EXPECT_EQ(stress.check_final(), "");
  std::cout << "[ stress   ] " << stress.operations() << " requests in " << seconds << " s, " << kStressThreads
            << " threads\n";
}

// Without the exclusive-lock feature both clients write at once, at full speed.
TEST_F(EncryptedRbdStressTest, TwoClientsSharingSectorsLoseNoBytes) {
  run_two_clients(create_luks_image(kStressImageBytes, LuksFormat{.order = 22}), stress_seconds(3));
}

// With it (the cluster's default features) librbd hands the lock back and forth between them.
TEST_F(EncryptedRbdStressTest, TwoClientsSharingSectorsLoseNoBytesUnderTheExclusiveLock) {
  run_two_clients(create_luks_image(kStressImageBytes), stress_seconds(2));
}

}  // namespace
}  // namespace rbdluks
