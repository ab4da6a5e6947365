// ReencryptRequest, the record by which `rbd-luks reencrypt --online` asks a serving client for a
// run, and ReencryptRequestFollower, which runs it in that client. The follower's tests play the
// command: they record the request and confirm the client that takes it through a second handle of
// the image, which they close again, as the command does from its own process.
#include "reencrypt_request.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "encrypted_rbd_fixture.h"
#include "encrypted_rbd_image.h"
#include "reencrypt_command_double.h"
#include "reencrypt_request_follower.h"

namespace rbdluks {
namespace {

using testing::bytes_of;
using testing::kMiB;
using testing::kPassphrase;

TEST(ReencryptRequestTest, KeepsEveryFieldThroughItsRecord) {
  auto request = ReencryptRequest::create();
  ASSERT_TRUE(request) << request.error().message();
  request->cipher = "aes-xts-plain64";
  request->key_bytes = 32;
  request->hotzone_bytes = 2 * kMiB;
  request->drop_unopened_keyslots = true;
  request->state = ReencryptRequest::State::stopped;
  request->client = "client.4100";
  request->message = "said \"why\"";
  request->error = "bad_key";
  request->updated = 1765000000;
  request->done_bytes = 12345;
  request->total_bytes = 67890;
  const auto parsed = ReencryptRequest::parse(request->to_json());
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->id, request->id);
  EXPECT_EQ(parsed->cipher, request->cipher);
  EXPECT_EQ(parsed->key_bytes, request->key_bytes);
  EXPECT_EQ(parsed->hotzone_bytes, request->hotzone_bytes);
  EXPECT_TRUE(parsed->drop_unopened_keyslots);
  EXPECT_EQ(parsed->state, ReencryptRequest::State::stopped);
  EXPECT_EQ(parsed->client, request->client);
  EXPECT_EQ(parsed->message, request->message);
  EXPECT_EQ(parsed->error, "bad_key");
  EXPECT_EQ(parsed->updated, 1765000000);
  EXPECT_EQ(parsed->done_bytes, 12345u);
  EXPECT_EQ(parsed->total_bytes, 67890u);

  // The volume's own cipher and key size unless the request names others.
  const auto bare = ReencryptRequest::parse(R"({"id":"ab","state":"requested"})");
  ASSERT_TRUE(bare) << bare.error().message();
  EXPECT_FALSE(bare->cipher);
  EXPECT_FALSE(bare->key_bytes);
  EXPECT_EQ(bare->hotzone_bytes, 0u);
}

TEST(ReencryptRequestTest, NamesEveryStateAndErrorKindBothWays) {
  using State = ReencryptRequest::State;
  for (const State state : {State::requested, State::taken, State::go, State::running, State::done, State::failed,
                            State::stopped, State::withdrawn}) {
    ReencryptRequest r;
    r.id = "ab";
    r.state = state;
    const auto parsed = ReencryptRequest::parse(r.to_json());
    ASSERT_TRUE(parsed) << state_name(state);
    EXPECT_EQ(parsed->state, state);
  }
  for (const Errc errc : {Errc::usage, Errc::bad_key, Errc::key_unavailable, Errc::bad_header, Errc::failure}) {
    EXPECT_EQ(error_kind(error_kind_name(Error(errc, "x"))), errc);
  }
  EXPECT_EQ(error_kind("unheard of"), Errc::failure);
}

TEST(ReencryptRequestTest, RefusesRecordsItDidNotWrite) {
  for (const char* value : {"", "on", "[1]", "{}", R"({"state":"requested"})", R"({"id":"ab","state":"paused"})",
                            R"({"id":7,"state":"requested"})", R"({"id":"ab","state":"running","done_bytes":"x"})"}) {
    const auto parsed = ReencryptRequest::parse(value);
    ASSERT_FALSE(parsed) << value;
    EXPECT_TRUE(parsed.error().is(Errc::bad_header)) << value;
  }
}

TEST(ReencryptRequestTest, EachRequestHasItsOwnId) {
  std::set<std::string> ids;
  for (int i = 0; i < 64; ++i) {
    auto request = ReencryptRequest::create();
    ASSERT_TRUE(request);
    EXPECT_EQ(request->id.size(), 16u);
    ids.insert(request->id);
  }
  EXPECT_EQ(ids.size(), 64u);
}

class ReencryptRequestFollowerTest : public testing::EncryptedRbdFixture {
 protected:
  static constexpr uint64_t kBytes = 24 * kMiB;

  void SetUp() override {
    EncryptedRbdFixture::SetUp();
    name_ = create_luks_image(kBytes);
    command_ = std::make_unique<testing::ReencryptCommandDouble>(connection_, name_);
    auto image = EncryptedRbdImage::open(io(), name_, std::nullopt, false, bytes_of(kPassphrase), {});
    ASSERT_TRUE(image) << image.error().message();
    image_ = std::move(*image);
    data_ = testing::random_bytes(kBytes, 7);
    ASSERT_EQ(image_->write(0, data_), static_cast<ssize_t>(kBytes));
  }

  // The image goes before the fixture removes it (an open image cannot be removed).
  void TearDown() override {
    if (image_) static_cast<void>(image_->close());
    image_.reset();
    EncryptedRbdFixture::TearDown();
  }

  std::unique_ptr<ReencryptRequestFollower> follow() {
    return std::make_unique<ReencryptRequestFollower>(
        *image_, [] { return Result<SecureBuffer>(SecureBuffer::copy_of(std::string_view(kPassphrase))); }, 0);
  }

  // Records request, and confirms this image's client once it has taken it, as the command does.
  void request_and_confirm(ReencryptRequest request) {
    command_->request_and_confirm(std::move(request), "client." + std::to_string(image_->client_id()));
  }

  std::string name_;
  std::unique_ptr<testing::ReencryptCommandDouble> command_;
  std::unique_ptr<EncryptedRbdImage> image_;
  std::vector<uint8_t> data_;
};

TEST_F(ReencryptRequestFollowerTest, RunsARequestWhileRequestsGoOnAndReportsIt) {
  const SecureBuffer old_key = testing::header_volume_key(connection_, name_);
  const auto follower = follow();
  // Metadata that is not a request, and a record that is not one, change nothing.
  ASSERT_TRUE(image_->set_metadata("unrelated", "x"));
  command_->submit("not a request");
  auto request = ReencryptRequest::create();
  ASSERT_TRUE(request);
  request->hotzone_bytes = 1 * kMiB;
  ASSERT_NO_FATAL_FAILURE(request_and_confirm(*request));

  // A writer and a reader over the first 4 MiB until the run ends.
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::thread io([&] {
    std::vector<uint8_t> got(size_t{64} * 1024);
    for (uint64_t round = 0; !done; ++round) {
      const uint64_t at = (round * 7919 * 4096) % (4 * kMiB - got.size());
      std::copy_n(testing::random_bytes(got.size(), round).begin(), got.size(), data_.begin() + static_cast<long>(at));
      if (image_->write(at, std::span(data_).subspan(at, got.size())) != static_cast<ssize_t>(got.size())) ++failures;
      if (image_->read(at, got) != static_cast<ssize_t>(got.size()) ||
          !std::equal(got.begin(), got.end(), data_.begin() + static_cast<long>(at))) {
        ++failures;
      }
    }
  });
  const ReencryptRequest finished = command_->record([](const ReencryptRequest& r) { return r.finished(); });
  done = true;
  io.join();

  EXPECT_EQ(finished.id, request->id);
  EXPECT_EQ(finished.state, ReencryptRequest::State::done) << finished.message;
  EXPECT_EQ(finished.client, "client." + std::to_string(image_->client_id()));
  EXPECT_NE(finished.message.find("keyslot(s) "), std::string::npos) << finished.message;
  EXPECT_EQ(finished.done_bytes, kBytes);
  EXPECT_EQ(finished.total_bytes, kBytes);
  EXPECT_EQ(failures, 0);
  std::vector<uint8_t> got(kBytes);
  ASSERT_EQ(image_->read(0, got), static_cast<ssize_t>(kBytes));
  EXPECT_TRUE(got == data_);
  EXPECT_FALSE(testing::header_volume_key(connection_, name_).equals(old_key.span())) << "the key did not change";

  // The same request again is not taken again.
  command_->submit(request->to_json());
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(command_->record([](const ReencryptRequest&) { return true; }).state, ReencryptRequest::State::requested);
}

// A request left by a command that went away (killed, or the client opened the image after it
// gave up) is taken, by a follower that starts after it too, but never run: only the command's
// go starts a run.
TEST_F(ReencryptRequestFollowerTest, RunsNothingTheCommandDoesNotConfirm) {
  const SecureBuffer old_key = testing::header_volume_key(connection_, name_);
  auto request = ReencryptRequest::create();
  ASSERT_TRUE(request);
  request->drop_unopened_keyslots = true;
  command_->submit(request->to_json());
  const auto follower = follow();
  const ReencryptRequest taken =
      command_->record([](const ReencryptRequest& r) { return r.state != ReencryptRequest::State::requested; });
  EXPECT_EQ(taken.state, ReencryptRequest::State::taken);
  // Other metadata changes wake the follower again; it still waits for go.
  ASSERT_TRUE(image_->set_metadata("unrelated", "y"));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(command_->record([](const ReencryptRequest&) { return true; }).state, ReencryptRequest::State::taken);
  // A go for another client runs nothing here either.
  ReencryptRequest elsewhere = taken;
  elsewhere.client = "client.1";
  elsewhere.state = ReencryptRequest::State::go;
  command_->submit(elsewhere.to_json());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(command_->record([](const ReencryptRequest&) { return true; }).state, ReencryptRequest::State::go);
  EXPECT_FALSE(image_->reencryption_unfinished());
  EXPECT_TRUE(testing::header_volume_key(connection_, name_).equals(old_key.span())) << "the key changed";
}

// Another client (as another process: a cluster connection of its own) that opens the image
// during the run: one that goes again within the grace is waited out and the run ends done; one that
// stays ends the run between steps, and the header keeps the run for `rbd-luks reencrypt`.
class ReencryptRequestOtherClientTest : public ReencryptRequestFollowerTest {
 protected:
  // A grace shorter than the 40 s default, which the test would otherwise wait out.
  std::unique_ptr<ReencryptRequestFollower> follow_with_short_grace() {
    return std::make_unique<ReencryptRequestFollower>(
        *image_, [] { return Result<SecureBuffer>(SecureBuffer::copy_of(std::string_view(kPassphrase))); }, 0,
        std::chrono::seconds(8));
  }

  // A run of 96 steps, confirmed and under way, and another client's handle of the image.
  std::unique_ptr<RbdImage> run_and_open_another() {
    auto connection = RbdConnection::connect({});
    EXPECT_TRUE(connection) << connection.error().message();
    if (!connection) return nullptr;
    auto request = ReencryptRequest::create();
    EXPECT_TRUE(request);
    request->hotzone_bytes = uint64_t{256} * 1024;
    request_and_confirm(*request);
    if (HasFatalFailure()) return nullptr;
    const auto under_way = command_->record([](const ReencryptRequest& r) { return r.finished() || r.done_bytes > 0; });
    EXPECT_EQ(under_way.state, ReencryptRequest::State::running) << under_way.message;
    auto other = open_rbd_image(*connection, {testing::kPool, "", name_, std::nullopt}, OpenMode::read_write);
    EXPECT_TRUE(other) << other.error().message();
    return other ? std::move(*other) : nullptr;
  }

  void expect_data() {
    std::vector<uint8_t> got(kBytes);
    ASSERT_EQ(image_->read(0, got), static_cast<ssize_t>(kBytes));
    EXPECT_TRUE(got == data_);
  }
};

TEST_F(ReencryptRequestOtherClientTest, OneThatGoesWithinTheGraceIsWaitedOut) {
  const auto follower = follow_with_short_grace();
  auto other = run_and_open_another();
  ASSERT_TRUE(other);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_FALSE(command_->record([](const ReencryptRequest&) { return true; }).finished()) << "the run did not wait";
  ASSERT_TRUE(other->close());
  const ReencryptRequest ended = command_->record([](const ReencryptRequest& r) { return r.finished(); });
  EXPECT_EQ(ended.state, ReencryptRequest::State::done) << ended.message;
  EXPECT_FALSE(image_->reencryption_unfinished());
  expect_data();
}

TEST_F(ReencryptRequestOtherClientTest, OneThatStaysEndsTheRunBetweenSteps) {
  const auto follower = follow_with_short_grace();
  auto other = run_and_open_another();
  ASSERT_TRUE(other);
  const ReencryptRequest ended = command_->record([](const ReencryptRequest& r) { return r.finished(); });
  ASSERT_TRUE(other->close());
  EXPECT_EQ(ended.state, ReencryptRequest::State::failed) << ended.message;
  EXPECT_NE(ended.message.find("is open by another client"), std::string::npos) << ended.message;
  EXPECT_LT(ended.done_bytes, kBytes);
  EXPECT_TRUE(image_->reencryption_unfinished());
  expect_data();
}

TEST_F(ReencryptRequestFollowerTest, AClientThatClosesStopsTheRunAndSaysHowToFinishIt) {
  auto follower = follow();
  auto request = ReencryptRequest::create();
  ASSERT_TRUE(request);
  request->hotzone_bytes = uint64_t{256} * 1024;  // 96 steps
  ASSERT_NO_FATAL_FAILURE(request_and_confirm(*request));
  const ReencryptRequest running = command_->record(
      [](const ReencryptRequest& r) { return r.state != ReencryptRequest::State::requested && r.done_bytes > 0; });
  ASSERT_EQ(running.state, ReencryptRequest::State::running) << running.message;
  follower.reset();
  const ReencryptRequest stopped = command_->record([](const ReencryptRequest& r) { return r.finished(); });
  ASSERT_EQ(stopped.state, ReencryptRequest::State::stopped) << stopped.message;
  EXPECT_LT(stopped.done_bytes, kBytes);
  EXPECT_NE(stopped.message.find("`rbd-luks reencrypt " + image_->name() + "` finishes the run"), std::string::npos)
      << stopped.message;
  EXPECT_TRUE(image_->reencryption_unfinished());
  // The data path goes on with both keys until the image closes.
  std::vector<uint8_t> got(kBytes);
  ASSERT_EQ(image_->read(0, got), static_cast<ssize_t>(kBytes));
  EXPECT_TRUE(got == data_);
}

}  // namespace
}  // namespace rbdluks
