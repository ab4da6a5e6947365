// RbdHeaderLock: librados's object lock calls (cls_lock) on the image's header object. Each lock
// gets a fresh cookie, "<random hex> <holder>": RADOS lists cookies with the lock's holders but not
// the lock's description, so the cookie carries what other clients are told while they wait.
#include "rbd_header_lock.h"

#include <rados/librados.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <vector>

#include "random.h"
#include "rbd_image.h"

namespace rbdluks {
namespace {

constexpr const char* kLockName = "rbd-luks.header";

struct Locker {
  std::string client;  // "client.4123"
  std::string cookie;
  std::string address;
};

std::string describe(const Locker& locker) {
  const size_t space = locker.cookie.find(' ');
  const std::string what = space == std::string::npos ? "not rbd-luks" : locker.cookie.substr(space + 1);
  return locker.client + " at " + locker.address + ": " + what;
}

// n strings, each ended by '\0', from the start of buffer.
std::vector<std::string> split_strings(const std::vector<char>& buffer, size_t length, size_t n) {
  std::vector<std::string> strings;
  for (size_t at = 0; strings.size() < n && at < length;) {
    const auto end =
        std::find(buffer.begin() + static_cast<ptrdiff_t>(at), buffer.begin() + static_cast<ptrdiff_t>(length), '\0');
    strings.emplace_back(buffer.begin() + static_cast<ptrdiff_t>(at), end);
    at = static_cast<size_t>(end - buffer.begin()) + 1;
  }
  strings.resize(n);
  return strings;
}

Result<std::vector<Locker>> list_lockers(const RbdImage& image, const std::string& oid) {
  std::array<std::vector<char>, 4> buffers;  // tag, clients, cookies, addresses
  for (auto& b : buffers) b.resize(1024);
  // The holders may change between a call that says how much room they need and the next.
  for (int tries = 0; tries < 8; ++tries) {
    std::array<size_t, 4> lengths{};
    for (size_t i = 0; i < buffers.size(); ++i) lengths[i] = buffers[i].size();
    int exclusive = 0;
    const ssize_t n = rados_list_lockers(image.ioctx(), oid.c_str(), kLockName, &exclusive, buffers[0].data(),
                                         &lengths[0], buffers[1].data(), &lengths[1], buffers[2].data(), &lengths[2],
                                         buffers[3].data(), &lengths[3]);
    if (n == -ERANGE) {  // the lengths now say what is needed
      for (size_t i = 0; i < buffers.size(); ++i) buffers[i].resize(std::max(buffers[i].size(), lengths[i]));
      continue;
    }
    if (n < 0) return ceph_error(static_cast<int>(n), "list the holders of the header lock of " + image.name());
    const size_t count = static_cast<size_t>(n);
    const auto clients = split_strings(buffers[1], lengths[1], count);
    const auto cookies = split_strings(buffers[2], lengths[2], count);
    const auto addresses = split_strings(buffers[3], lengths[3], count);
    std::vector<Locker> lockers;
    for (size_t i = 0; i < count; ++i) lockers.push_back({clients[i], cookies[i], addresses[i]});
    return lockers;
  }
  return ceph_error(-ERANGE, "list the holders of the header lock of " + image.name());
}

// Bumps the generation key, which makes librbd notify every client that has the image open.
Status announce_change(RbdImage& image) {
  RL_ASSIGN(const auto current, image.get_metadata(kHeaderGenerationMetadataKey));
  const uint64_t generation = current ? std::strtoull(current->c_str(), nullptr, 10) : 0;
  return image.set_metadata(kHeaderGenerationMetadataKey, std::to_string(generation + 1));
}

class RbdHeaderLock final : public HeaderLock {
 public:
  RbdHeaderLock(RbdImage& image, std::string oid, std::string cookie)
      : image_(image), oid_(std::move(oid)), cookie_(std::move(cookie)) {}
  ~RbdHeaderLock() override { static_cast<void>(release()); }
  RbdHeaderLock(const RbdHeaderLock&) = delete;
  RbdHeaderLock& operator=(const RbdHeaderLock&) = delete;

  Status release() override {
    if (released_) return {};
    released_ = true;
    const Status announced = announce_change(image_);
    const int r = rados_unlock(image_.ioctx(), oid_.c_str(), kLockName, cookie_.c_str());
    RL_TRY(announced);
    if (r == -ENOENT) {
      return Error(Errc::failure, image_.name() +
                                      ": another client broke the header lock while this change ran, taking this "
                                      "client for gone; check the header with `rbd-luks dump`");
    }
    if (r < 0) return ceph_error(r, "release the header lock of " + image_.name());
    return {};
  }

 private:
  RbdImage& image_;
  std::string oid_;
  std::string cookie_;
  bool released_ = false;
};

// The holder no longer watches the header object (see the header). Breaks its lock if it still
// holds it now, after the look at the watchers: it held it then too, without the image open.
Status break_lock_of_gone_holder(const RbdImage& image, const std::string& oid, const Locker& holder) {
  RL_ASSIGN(const auto lockers, list_lockers(image, oid));
  if (std::none_of(lockers.begin(), lockers.end(), [&](const Locker& l) { return l.cookie == holder.cookie; })) {
    return {};
  }
  std::string address = holder.address;
  if (const int r = rados_blocklist_add(rados_ioctx_get_cluster(image.ioctx()), address.data(), 0); r < 0) {
    return ceph_error(r, image.name() + ": the header lock's holder (" + describe(holder) +
                             ") no longer has the image open; blocklisting it before breaking its lock failed");
  }
  const int r = rados_break_lock(image.ioctx(), oid.c_str(), kLockName, holder.client.c_str(), holder.cookie.c_str());
  if (r < 0 && r != -ENOENT) return ceph_error(r, "break the header lock of " + image.name());
  return {};
}

Result<HeaderLockAttempt> try_lock(RbdImage& image, const std::string& oid, const std::string& cookie) {
  const int r = rados_lock_exclusive(image.ioctx(), oid.c_str(), kLockName, cookie.c_str(), "", nullptr, 0);
  if (r == 0) return HeaderLockAttempt{std::make_unique<RbdHeaderLock>(image, oid, cookie), ""};
  if (r != -EBUSY) return ceph_error(r, "take the header lock of " + image.name());
  RL_ASSIGN(const auto lockers, list_lockers(image, oid));
  if (lockers.empty()) return HeaderLockAttempt{nullptr, "a client that has just released it"};
  const Locker& holder = lockers.front();
  RL_ASSIGN(const auto watchers, image.watchers());
  // By client id: RADOS lists lock holders' addresses with a "v1:" prefix and watchers' without.
  const bool open = std::any_of(watchers.begin(), watchers.end(), [&](const RbdWatcher& w) {
    return holder.client == "client." + std::to_string(w.client_id);
  });
  if (!open) RL_TRY(break_lock_of_gone_holder(image, oid, holder));
  return HeaderLockAttempt{nullptr, describe(holder)};
}

}  // namespace

Result<std::unique_ptr<HeaderLock>> lock_rbd_header(RbdImage& image, const std::string& purpose) {
  if (image.read_only()) return Error(Errc::failure, image.name() + " is open read-only");
  RL_ASSIGN(const std::string oid, image.header_object());
  RL_ASSIGN(std::string cookie, random_hex(8));
  cookie += " " + header_lock_holder(purpose);
  return wait_for_header_lock(image.name(), [&] { return try_lock(image, oid, cookie); });
}

}  // namespace rbdluks
