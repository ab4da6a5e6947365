// Stress tests of EncryptedRbdImage on the model of stress_model.h, each for a bounded time
// (RBDLUKS_STRESS_SECONDS, else a few seconds): all eight threads on one open image; and the
// threads split between this process and rbd_test_client, two clients of one image whose writes
// share sectors (half of the fine region's writes are 512-byte blocks inside 4 KiB sectors), where
// a read-modify-write of a partial sector must not lose the other client's bytes of that sector;
// and all eight threads on one image while it is reencrypted online.
#include <gtest/gtest.h>
#include <rbd/librbd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <thread>

#include "encrypted_rbd_fixture.h"
#include "encrypted_rbd_image.h"
#include "luks_volume.h"
#include "sector_codec.h"
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

// The volume key changes hotzone by hotzone (32 of them) while eight threads read and write across
// the moving boundary, and go on after the run. No byte may be lost or read under the wrong key,
// and librbd's native encryption must then read every byte of the model.
TEST_F(EncryptedRbdStressTest, OnlineReencryptionLosesNoBytes) {
  const int seconds = stress_seconds(5);
  const std::string name = create_luks_image(kStressImageBytes);
  const SecureBuffer old_key = header_volume_key(connection_, name);
  auto image = EncryptedRbdImage::open(io(), name, std::nullopt, false, bytes_of(kPassphrase));
  ASSERT_TRUE(image) << image.error().message();

  // The bytes outside the stress regions hold data no thread changes, which a scanner reads in
  // whole-image reads: long reads that a step would overtake if reads did not wait for it.
  const std::vector<uint8_t> background = random_bytes(kStressImageBytes, 77);
  const auto outside = [](uint64_t at) { return owner(at) < 0; };
  for (uint64_t at = 0; at < kStressImageBytes;) {
    uint64_t end = at;
    while (end < kStressImageBytes && outside(end) == outside(at)) ++end;
    if (outside(at)) {
      ASSERT_EQ((*image)->write(at, std::span(background).subspan(at, end - at)), static_cast<ssize_t>(end - at));
    }
    at = end;
  }
  std::atomic<bool> scanning{true};
  std::atomic<uint64_t> scans{0};
  std::atomic<uint64_t> bad_scans{0};
  std::thread scanner([&] {
    std::vector<uint8_t> got(kStressImageBytes);
    while (scanning) {
      if ((*image)->read(0, got) != static_cast<ssize_t>(got.size())) ++bad_scans;
      for (uint64_t at = 0; at < kStressImageBytes; ++at) {
        if (outside(at) && got[at] != background[at]) {
          ++bad_scans;
          break;
        }
      }
      ++scans;
    }
  });

  Stress stress(**image);
  ReencryptOptions options;
  options.hotzone_bytes = kStressImageBytes / 32;
  options.minimal_digest_cost = true;
  std::optional<Result<ReencryptReport>> report;
  // The requests between the first step's end and the last one's: those that ran beside steps.
  std::atomic<uint64_t> requests_before{0};
  std::atomic<uint64_t> requests_after{0};
  options.progress = [&](uint64_t done, uint64_t total) {
    if (done == options.hotzone_bytes) requests_before = stress.operations();
    if (done == total) requests_after = stress.operations();
  };
  std::thread reencryption([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    report = (*image)->reencrypt({bytes_of(kPassphrase)}, options);
  });
  run_stress_threads(stress, 0, kStressThreads, seconds);
  reencryption.join();
  scanning = false;
  scanner.join();
  ASSERT_TRUE(*report) << report->error().message();
  EXPECT_EQ(bad_scans, 0u) << "of " << scans << " whole-image reads, some saw the unchanged bytes changed";
  EXPECT_EQ((*report)->steps, 32u);
  EXPECT_GT(requests_after, requests_before) << "no request ran beside the reencryption's steps";
  EXPECT_EQ(stress.failures(), 0) << stress.first_failure();
  // Requests after the run, under the new key alone.
  run_stress_threads(stress, 0, kStressThreads, 1);
  EXPECT_EQ(stress.failures(), 0) << stress.first_failure();
  EXPECT_EQ(stress.check_final(), "");
  // The header checks that the run's last header changes set off run on a worker: give them time.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_TRUE((*image)->header_status()) << "the run's own header changes must not stop the image's I/O";
  auto again = (*image)->reencrypt({bytes_of(kPassphrase)}, options);
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(Errc::usage)) << again.error().message();
  ASSERT_TRUE((*image)->close());
  image->reset();

  const SecureBuffer new_key = header_volume_key(connection_, name);
  ASSERT_FALSE(new_key.empty());
  EXPECT_FALSE(new_key.equals(old_key.span())) << "the volume key did not change";
  rbd_image_t native = nullptr;
  ASSERT_EQ(rbd_open(io(), name.c_str(), &native, nullptr), 0);
  rbd_encryption_luks2_format_options_t luks2{RBD_ENCRYPTION_ALGORITHM_AES256, kPassphrase.data(), kPassphrase.size()};
  ASSERT_EQ(rbd_encryption_load(native, RBD_ENCRYPTION_FORMAT_LUKS2, &luks2, sizeof luks2), 0);
  // Sector by sector, leaving out those that should read as zeros: the stress zeroes whole sectors,
  // and on the test cluster's memstore, which keeps zeroed ranges as written zeros rather than
  // holes, the native layer decrypts those into noise (with or without a reencryption).
  constexpr uint64_t kSector = 4096;
  std::vector<uint8_t> expected = stress.model();
  for (uint64_t at = 0; at < kStressImageBytes; ++at) {
    if (outside(at)) expected[at] = background[at];
  }
  std::vector<uint8_t> got(kStressImageBytes);
  ASSERT_EQ(rbd_read(native, 0, got.size(), reinterpret_cast<char*>(got.data())), static_cast<ssize_t>(got.size()));
  uint64_t sectors_compared = 0;
  for (uint64_t at = 0; at < kStressImageBytes; at += kSector) {
    const auto want = std::span(expected).subspan(at, kSector);
    if (is_zero(want)) continue;
    ++sectors_compared;
    ASSERT_TRUE(std::equal(want.begin(), want.end(), got.begin() + static_cast<std::ptrdiff_t>(at)))
        << "librbd's native encryption reads the sector at " << at << " otherwise than the model";
  }
  EXPECT_GT(sectors_compared, kStressImageBytes / kSector / 2);
  rbd_close(native);
  std::cout << "[ stress   ] " << stress.operations() << " requests, " << requests_after - requests_before
            << " of them during the reencryption\n";
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
