// Test support: the part `rbd-luks reencrypt TARGET --online` plays towards a client that follows
// reencryption requests (reencrypt_request_follower.h), so that a test can drive a follower inside
// its own process: it records a request through a handle of its own, confirms the client that takes
// it, and reads the record until it says what the test waits for.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "encrypted_rbd_fixture.h"
#include "reencrypt_request.h"

namespace rbdluks::testing {

class ReencryptCommandDouble {
 public:
  ReencryptCommandDouble(std::shared_ptr<RbdConnection> connection, std::string name)
      : connection_(std::move(connection)), name_(std::move(name)) {}

  // Records `value` through a handle of its own, which it closes again, as the command does.
  void submit(const std::string& value) {
    auto raw = open_rbd_image(connection_, {kPool, "", name_, std::nullopt}, OpenMode::read_write);
    ASSERT_TRUE(raw) << raw.error().message();
    ASSERT_TRUE((*raw)->set_metadata(kReencryptRequestKey, value));
    ASSERT_TRUE((*raw)->close());
  }

  // Records request, and once a client has taken it, checks that it is `client` and confirms it.
  void request_and_confirm(ReencryptRequest request, const std::string& client) {
    submit(request.to_json());
    const ReencryptRequest taken =
        record([](const ReencryptRequest& r) { return r.state != ReencryptRequest::State::requested; });
    ASSERT_EQ(taken.state, ReencryptRequest::State::taken);
    ASSERT_EQ(taken.client, client);
    request.client = taken.client;
    request.state = ReencryptRequest::State::go;
    submit(request.to_json());
  }

  // The record once `until` holds for it, or after 120 s. Read through a read-only handle, which
  // registers no watch, as the command reads it.
  template <typename Until>
  ReencryptRequest record(Until until) {
    auto raw = open_rbd_image(connection_, {kPool, "", name_, std::nullopt}, OpenMode::read_only);
    EXPECT_TRUE(raw) << raw.error().message();
    ReencryptRequest last;
    for (int i = 0; raw && i < 12000; ++i) {
      const auto value = (*raw)->get_metadata(kReencryptRequestKey);
      if (value && *value) {
        if (auto parsed = ReencryptRequest::parse(**value)) {
          last = std::move(*parsed);
          if (until(last)) break;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return last;
  }

 private:
  std::shared_ptr<RbdConnection> connection_;
  std::string name_;
};

}  // namespace rbdluks::testing
