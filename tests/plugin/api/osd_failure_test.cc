// What callers of the public C++ API see when the cluster fails under a stream of asynchronous
// writes, reads and flushes (VerifiedIoStream), on a cluster of its own whose OSD keeps its data
// on bluestore (the "ceph_bluestore" CTest fixture):
// - the OSD is killed (SIGKILL) in the middle of the stream and started again: the requests in
//   flight complete once it is back, and every acknowledged write reads back byte for byte, through
//   the same image and in another client that opens it afresh;
// - the OSD stays down past the client's rados_osd_op_timeout: every request meanwhile fails
//   (-ETIMEDOUT) within a bound, nothing reports success for data the cluster does not have, and
//   once the OSD is back the image works on and holds every acknowledged write;
// - the client is blocklisted in the middle of the stream: every request after the fence fails
//   (-ESHUTDOWN), and what was acknowledged before it is there for the next client. (The calls one
//   by one, and close after a fence, are in c_api_faults_test.cc.)
// The restart runs with librbd's cache off and on with its default policy (writearound, which
// completes writes before sending them); the outage and the fence with the cache off, where every
// read and write must report its own failure (librbd 16's writearound cache can lose a failed
// write's error, see below). Never with the writeback and writethrough policies: their ObjectCacher
// keeps serving what it held before a compare-and-write, so reads after partial-sector writes
// through the same image are stale even without a fault (design.md, "OSD failures").
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "cluster_faults.h"
#include "encrypted_rbd_fixture.h"
#include "rbd_luks/image.h"
#include "verified_io_stream.h"

namespace rbdluks {
namespace {

using namespace rbdluks::testing;
using namespace std::chrono_literals;
using Clock = VerifiedIoStream::Clock;
using Kind = VerifiedIoStream::Kind;

struct CacheMode {
  std::string name;
  OwnClient::Options options;
  bool completion_is_durable;
};

const CacheMode kCacheOff = {"cache_off", {{"rbd_cache", "false"}}, true};
const CacheMode kCacheWriteAround = {
    "cache_writearound", {{"rbd_cache", "true"}, {"rbd_cache_policy", "writearound"}}, false};

// Test names and messages show the mode's name.
void PrintTo(const CacheMode& mode, std::ostream* out) { *out << mode.name; }

// A client that reads back what the cluster holds, with no cache in between.
const OwnClient::Options kReader = {{"rbd_cache", "false"}, {"rados_osd_op_timeout", "30"}};

constexpr uint64_t kSize = 48 * kMiB;

class FailureTest : public EncryptedRbdFixture {
 protected:
  // The test's client: the cache mode, and how long an OSD operation may wait for an answer.
  OwnClient::Options client_options(std::chrono::seconds op_timeout) const {
    OwnClient::Options options = mode_.options;
    options.emplace_back("rados_osd_op_timeout", std::to_string(op_timeout.count()));
    return options;
  }

  static std::unique_ptr<Image> open(rados_ioctx_t io, const std::string& name) {
    auto image = Image::open(io, name, bytes_of(kPassphrase));
    EXPECT_TRUE(image) << image.error().message();
    return image ? std::move(*image) : nullptr;
  }

  VerifiedIoStream::Options stream_options() const {
    return {.size = kSize, .completion_is_durable = mode_.completion_is_durable};
  }

  // Stops the stream; when requests hang past `patience`, the image cannot be closed (close would
  // wait for them), so it is left open and the test fails.
  static bool stop(VerifiedIoStream& stream, std::unique_ptr<Image>& image, Clock::duration patience) {
    if (stream.stop(patience)) return true;
    ADD_FAILURE() << "requests still in flight " << std::chrono::duration_cast<std::chrono::seconds>(patience).count()
                  << " s after the stream stopped";
    static_cast<void>(image.release());
    return false;
  }

  // Flushes, checks the contents and closes the image, then checks them again as a client of its
  // own reads them with nothing cached.
  void flush_check_close_and_reopen(VerifiedIoStream& stream, std::unique_ptr<Image> image, const std::string& name) {
    EXPECT_EQ(stream.flush(30s), 0) << "the flush after the cluster is whole again";
    EXPECT_EQ(stream.wrong_reads(), 0u) << "reads that reported success with wrong bytes";
    stream.check_contents(*image);
    const Status closed = image->close();
    EXPECT_TRUE(closed) << closed.error().message();
    const OwnClient reader(kReader);
    auto reopened = open(reader.io(), name);
    ASSERT_TRUE(reopened);
    stream.check_contents(*reopened);
  }

  CacheMode mode_ = kCacheOff;
};

// A restart loses nothing and fails nothing, so it runs with the cache on too.
class OsdRestartTest : public FailureTest, public ::testing::WithParamInterface<CacheMode> {
 protected:
  void SetUp() override {
    mode_ = GetParam();
    FailureTest::SetUp();
  }
};

// Where requests fail, librbd 16's cache can lose an error: a flush reports success for a write it
// completed early that then failed, when no write is in flight as the flush arrives
// (WriteAroundObjectDispatch::flush; design.md, "OSD failures"). So these run with the cache off.
using UncachedFailureTest = FailureTest;

bool in(const VerifiedIoStream::Outcome& o, Clock::time_point from, Clock::time_point to) {
  return o.submitted >= from && o.completed <= to;
}

std::string describe(const VerifiedIoStream::Outcome& o, Clock::time_point origin) {
  const auto ms = [&](Clock::time_point t) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(t - origin).count());
  };
  const char* kinds[] = {"write", "read", "flush"};
  return std::string(kinds[static_cast<int>(o.kind)]) + " submitted at " + ms(o.submitted) + " ms, completed at " +
         ms(o.completed) + " ms with " + std::to_string(o.result);
}

// When OSD 0 was killed, when its restart began, and when it was up again.
struct Outage {
  Clock::time_point killed;
  Clock::time_point restarting;
  Clock::time_point up;
};

// Kills OSD 0, leaves it down for `down`, then restarts it and waits until it is up.
Outage kill_osd_for(Clock::duration down) {
  Outage outage;
  OsdCrash crash(0);
  outage.killed = Clock::now();
  std::this_thread::sleep_for(down);
  outage.restarting = Clock::now();
  crash.restart();
  outage.up = Clock::now();
  return outage;
}

// Every request ended within `bound` of its submission.
void expect_none_slower_than(const std::vector<VerifiedIoStream::Outcome>& outcomes, Clock::duration bound,
                             Clock::time_point origin) {
  for (const auto& o : outcomes) {
    EXPECT_LE(o.completed - o.submitted, bound) << describe(o, origin);
  }
}

TEST_P(OsdRestartTest, OsdKilledMidStreamAndRestartedLosesNoAcknowledgedWrite) {
  const std::string name = create_luks_image(kSize);
  // Longer than a restart takes: requests wait for the OSD rather than fail.
  constexpr auto kOpTimeout = 30s;
  const OwnClient client(client_options(kOpTimeout));
  auto image = open(client.io(), name);
  ASSERT_TRUE(image);
  VerifiedIoStream stream(*image, stream_options());
  const auto began = Clock::now();
  stream.start();
  std::this_thread::sleep_for(1s);
  const auto [killed, restarting, up] = kill_osd_for(1500ms);  // requests pile up against the dead OSD
  std::this_thread::sleep_for(1s);
  if (!stop(stream, image, kOpTimeout + 10s)) return;

  const auto outcomes = stream.outcomes();
  expect_none_slower_than(outcomes, kOpTimeout + 5s, began);
  size_t across_the_outage = 0;
  for (const auto& o : outcomes) {
    if (o.submitted < killed && o.completed > restarting) ++across_the_outage;
    if (o.submitted > up) {
      EXPECT_GE(o.result, 0) << "after the restart: " << describe(o, began);
    }
  }
  EXPECT_GT(across_the_outage, 0u) << "no request was in flight while the OSD was down";
  EXPECT_GT(stream.acknowledged_writes(), 20u);
  flush_check_close_and_reopen(stream, std::move(image), name);
}

TEST_F(UncachedFailureTest, OsdDownPastTheOpTimeoutFailsEveryRequestAndLosesNoAcknowledgedWrite) {
  const std::string name = create_luks_image(kSize);
  constexpr auto kOpTimeout = 2s;
  const OwnClient client(client_options(kOpTimeout));
  auto image = open(client.io(), name);
  ASSERT_TRUE(image);
  VerifiedIoStream stream(*image, stream_options());
  const auto began = Clock::now();
  stream.start();
  std::this_thread::sleep_for(500ms);
  // Five op timeouts down: on a loaded machine the OSD's restart eats into the window, and the
  // test needs requests that lived wholly inside it.
  const auto [killed, restarting, up] = kill_osd_for(5 * kOpTimeout);
  std::this_thread::sleep_for(1s);
  if (!stop(stream, image, 3 * kOpTimeout + 10s)) return;

  // A request may wait behind one other for the sectors it shares with it, and a flush for the
  // writes before it: each wait is one op timeout.
  const auto outcomes = stream.outcomes();
  expect_none_slower_than(outcomes, 3 * kOpTimeout + 2s, began);
  size_t during = 0;
  for (const auto& o : outcomes) {
    if (o.submitted > up) {
      EXPECT_GE(o.result, 0) << "after the restart: " << describe(o, began);
    }
    // Reads and writes that lived only while the OSD was dead fail. (A flush then has no write to
    // wait for, with the cache off.)
    if (!in(o, killed, restarting) || o.kind == Kind::flush) continue;
    ++during;
    EXPECT_EQ(o.result, -ETIMEDOUT) << "while the OSD was down: " << describe(o, began);
  }
  EXPECT_GE(during, 5u) << "too few requests while the OSD was down";
  EXPECT_GT(stream.acknowledged_writes(), 20u);
  flush_check_close_and_reopen(stream, std::move(image), name);
}

TEST_F(UncachedFailureTest, BlocklistedMidStreamEveryLaterRequestFailsAndAcknowledgedWritesStay) {
  const std::string name = create_luks_image(kSize);
  constexpr auto kOpTimeout = 30s;
  auto client = std::make_unique<OwnClient>(client_options(kOpTimeout));
  auto image = open(client->io(), name);
  ASSERT_TRUE(image);
  VerifiedIoStream stream(*image, stream_options());
  const auto began = Clock::now();
  stream.start();
  EXPECT_TRUE(stream.wait_for_acknowledged_writes(20, 30s)) << "the stream did not start";
  std::optional<Blocklisting> fence;
  fence.emplace(connection_->handle(), *client);
  const auto fenced = Clock::now();
  std::this_thread::sleep_for(1s);
  if (!stop(stream, image, kOpTimeout + 10s)) return;

  const auto outcomes = stream.outcomes();
  expect_none_slower_than(outcomes, 5s, began);
  size_t after = 0;
  for (const auto& o : outcomes) {
    if (o.submitted < fenced || o.kind == Kind::flush) continue;
    ++after;
    EXPECT_EQ(o.result, -ESHUTDOWN) << "after the fence: " << describe(o, began);
  }
  EXPECT_GE(after, 5u) << "too few requests after the fence";
  EXPECT_GT(stream.acknowledged_writes(), 20u);
  EXPECT_EQ(stream.wrong_reads(), 0u);
  const Status closed = image->close();
  ASSERT_FALSE(closed) << "close of a fenced client";
  EXPECT_EQ(closed.error().code(), std::error_code(ESHUTDOWN, std::generic_category())) << closed.error().message();
  image.reset();
  client.reset();
  fence.reset();

  const OwnClient reader(kReader);
  auto reopened = open(reader.io(), name);
  ASSERT_TRUE(reopened);
  stream.check_contents(*reopened);
}

INSTANTIATE_TEST_SUITE_P(CacheModes, OsdRestartTest, ::testing::Values(kCacheOff, kCacheWriteAround),
                         [](const auto& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace rbdluks
