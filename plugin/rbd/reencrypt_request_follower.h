// ReencryptRequestFollower: runs, inside the process that serves an image, the online
// reencryptions that `rbd-luks reencrypt TARGET --online` records as requests in its metadata
// (reencrypt_request.h), and reports how each goes in the same record.
//
// librbd tells every client that has the image open when its metadata changes; this one then reads
// the record on a thread of its own (not librbd's, which the read would wait for), once also when
// it starts. It takes a request (state taken, naming this client), and runs it once the command
// confirms (go, naming this client) with EncryptedRbdImage::reencrypt, re-wrapping the keyslot that
// the image's own key opens (fetched again from where the open took it). Progress goes into the
// record every few seconds, as long as the record is still this run's. Destroying the follower
// stops a run between steps and waits for it: the header then records the run, and
// `rbd-luks reencrypt` finishes it offline.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "encrypted_rbd_image.h"
#include "reencrypt_request.h"
#include "result.h"
#include "secure_buffer.h"

namespace rbdluks {

class ReencryptRequestFollower {
 public:
  // The passphrase that opened the image, fetched again for each run.
  using KeySource = std::function<Result<SecureBuffer>()>;

  // image must outlive the follower. shared_handles and grace: as for EncryptedRbdImage::reencrypt
  // (grace also bounds how long a run retries its start while another client has the image open).
  ReencryptRequestFollower(EncryptedRbdImage& image, KeySource key, unsigned shared_handles,
                           std::chrono::milliseconds grace = EncryptedRbdImage::kOtherClientGrace);
  ~ReencryptRequestFollower();
  ReencryptRequestFollower(const ReencryptRequestFollower&) = delete;
  ReencryptRequestFollower& operator=(const ReencryptRequestFollower&) = delete;

 private:
  void follow();
  // The record as it is now; nullopt when absent, unreadable or not a request.
  std::optional<ReencryptRequest> record();
  // Reads the record and takes or runs what it asks of this client.
  void check();
  void run(ReencryptRequest request);
  // Writes the record back, unless another request has replaced it meanwhile.
  void publish(const ReencryptRequest& request);
  bool stopping();

  EncryptedRbdImage& image_;
  const KeySource key_;
  const unsigned shared_handles_;
  const std::chrono::milliseconds grace_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool notified_ = true;  // under mutex_, like stopping_; true: the record is read once at the start
  bool stopping_ = false;
  const std::string self_;  // client.N
  std::string taken_id_;    // the follower thread's: the request it took last
  std::string ran_id_;      // and the one it ran last
  std::thread thread_;
};

}  // namespace rbdluks
