// Real failures on the test cluster, for tests of what a client sees when the cluster turns it
// away: a client with a librados instance of its own (and the Ceph options a test needs), fenced
// the way an operator or a fencing tool does it (`ceph osd blocklist add ADDR`), a pool whose
// placement groups map to no OSD, where every operation waits for rados_osd_op_timeout and then
// fails with ETIMEDOUT, and an OSD that crashes (SIGKILL) and starts again. Nothing here is
// simulated: the OSDs and monitors refuse, and the OSD dies, for real.
#pragma once

#include <gtest/gtest.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace rbdluks::testing {

// Runs a monitor command (JSON) as `cluster`; "" on success, else what went wrong.
inline std::string mon_command(rados_t cluster, const std::string& json) {
  const char* cmd[] = {json.c_str()};
  char* out = nullptr;
  char* status = nullptr;
  size_t out_len = 0;
  size_t status_len = 0;
  const int r = rados_mon_command(cluster, cmd, 1, "", 0, &out, &out_len, &status, &status_len);
  std::string error = r < 0 ? json + ": " + std::to_string(r) + " " + std::string(status, status_len) : "";
  rados_buffer_free(out);
  rados_buffer_free(status);
  return error;
}

// A client of the test cluster (CEPH_CONF) with a librados instance of its own, so that fencing it
// leaves the test's other connections alone.
class OwnClient {
 public:
  using Options = std::vector<std::pair<std::string, std::string>>;

  // options are Ceph options set before connecting, e.g. {"rbd_cache", "false"}.
  explicit OwnClient(const Options& options, const std::string& pool = "rbd") {
    EXPECT_EQ(rados_create(&cluster_, nullptr), 0);
    EXPECT_EQ(rados_conf_read_file(cluster_, std::getenv("CEPH_CONF")), 0);
    for (const auto& [option, value] : options) {
      EXPECT_EQ(rados_conf_set(cluster_, option.c_str(), value.c_str()), 0) << option;
    }
    EXPECT_EQ(rados_connect(cluster_), 0);
    EXPECT_EQ(rados_ioctx_create(cluster_, pool.c_str(), &io_), 0);
  }
  ~OwnClient() {
    if (io_ != nullptr) rados_ioctx_destroy(io_);
    rados_shutdown(cluster_);
  }
  OwnClient(const OwnClient&) = delete;
  OwnClient& operator=(const OwnClient&) = delete;

  rados_ioctx_t io() const { return io_; }

  // Returns once this client has the cluster's newest OSD map. Its requests carry their map's
  // epoch, and an OSD serves none before it has that map too: so a change to the map made before
  // this (a blocklisting, a pool's new placement) applies to every request issued after it.
  void catch_up() const { EXPECT_EQ(rados_wait_for_latest_osdmap(cluster_), 0); }

  // The address the OSDs know this client by, as `ceph osd blocklist` takes it.
  std::string address() const {
    char* addresses = nullptr;
    EXPECT_EQ(rados_getaddrs(cluster_, &addresses), 0);
    std::string address = addresses != nullptr ? addresses : "";
    rados_buffer_free(addresses);
    return address;
  }

 private:
  rados_t cluster_ = nullptr;
  rados_ioctx_t io_ = nullptr;
};

// `ceph osd blocklist add` of a client, issued through `admin`, for as long as this lives: every
// operation the client starts from then on fails with -EBLOCKLISTED, which is -ESHUTDOWN in errno
// terms.
class Blocklisting {
 public:
  Blocklisting(rados_t admin, const OwnClient& client) : admin_(admin), address_(client.address()) {
    EXPECT_EQ(mon_command(admin_, R"({"prefix": "osd blocklist", "blocklistop": "add", "addr": ")" + address_ + "\"}"),
              "");
    client.catch_up();
  }
  ~Blocklisting() {
    EXPECT_EQ(mon_command(admin_, R"({"prefix": "osd blocklist", "blocklistop": "rm", "addr": ")" + address_ + "\"}"),
              "");
  }
  Blocklisting(const Blocklisting&) = delete;
  Blocklisting& operator=(const Blocklisting&) = delete;

 private:
  rados_t admin_;
  std::string address_;
};

// A pool of its own, usable until stall() moves its placement groups to a CRUSH rule that picks
// from an empty root: they then have no OSD, and every operation on the pool waits for its client's
// rados_osd_op_timeout. The pool is deleted at the end.
class StallablePool {
 public:
  explicit StallablePool(rados_t admin)
      : admin_(admin), name_("stall-" + std::to_string(getpid()) + "-" + std::to_string(counter()++)) {
    // The empty root and its rule stay for the cluster's life; making them again changes nothing.
    EXPECT_EQ(mon_command(admin_, R"({"prefix": "osd crush add-bucket", "name": "nowhere", "type": "root"})"), "");
    EXPECT_EQ(mon_command(admin_, R"({"prefix": "osd crush rule create-replicated", "name": "nowhere",)"
                                  R"( "root": "nowhere", "type": "osd"})"),
              "");
    EXPECT_EQ(mon_command(admin_, R"({"prefix": "osd pool create", "pool": ")" + name_ + R"(", "pg_num": 8})"), "");
    rados_ioctx_t io = nullptr;
    EXPECT_EQ(rados_ioctx_create(admin_, name_.c_str(), &io), 0);
    EXPECT_EQ(rbd_pool_init(io, false), 0);
    rados_ioctx_destroy(io);
  }
  ~StallablePool() {
    EXPECT_EQ(mon_command(admin_, R"({"prefix": "osd pool delete", "pool": ")" + name_ + R"(", "pool2": ")" + name_ +
                                      R"(", "yes_i_really_really_mean_it": true})"),
              "");
  }
  StallablePool(const StallablePool&) = delete;
  StallablePool& operator=(const StallablePool&) = delete;

  const std::string& name() const { return name_; }

  // From now on, operations of `client` on the pool wait (and time out).
  void stall(const OwnClient& client) {
    EXPECT_EQ(mon_command(admin_, R"({"prefix": "osd pool set", "pool": ")" + name_ +
                                      R"(", "var": "crush_rule", "val": "nowhere"})"),
              "");
    client.catch_up();
  }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }

  rados_t admin_;
  std::string name_;
};

// osd.N of the test cluster crashed, for as long as this lives or until restart(): killed with
// SIGKILL (nothing flushed) through `deploy/ceph-cluster.sh kill-osd`, started again through
// `start-osd`, which returns once the OSD is up and answers. The OSD map still shows it up while it
// is dead (no peer reports it), so clients keep sending to it until it is back or their
// rados_osd_op_timeout runs out. Needs a cluster whose OSDs keep their data (bluestore): the
// "ceph_bluestore" CTest fixture, which names the script in RBD_LUKS_CEPH_CLUSTER; the cluster's
// directory is the one of its conf, CEPH_CONF.
class OsdCrash {
 public:
  explicit OsdCrash(int osd) : osd_(osd) {
    const std::string error = run("kill-osd");
    EXPECT_EQ(error, "");
    down_ = error.empty();
  }
  ~OsdCrash() {
    if (down_) {
      EXPECT_EQ(run("start-osd"), "");
    }
  }
  OsdCrash(const OsdCrash&) = delete;
  OsdCrash& operator=(const OsdCrash&) = delete;

  void restart() {
    if (!down_) return;
    down_ = false;
    EXPECT_EQ(run("start-osd"), "");
  }

 private:
  // The script's command on osd_: "" once it succeeded, else what failed (its stderr says why).
  std::string run(const std::string& command) const {
    const char* script = std::getenv("RBD_LUKS_CEPH_CLUSTER");
    const char* conf = std::getenv("CEPH_CONF");
    if (script == nullptr || conf == nullptr) return "RBD_LUKS_CEPH_CLUSTER and CEPH_CONF are not set";
    const std::string dir = std::filesystem::path(conf).parent_path();
    std::vector<std::string> words{"bash", script, command, std::to_string(osd_), "--dir", dir};
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (posix_spawnp(&pid, "bash", nullptr, nullptr, argv.data(), environ) != 0) return "cannot run bash";
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return std::string(script) + " " + command + " " + std::to_string(osd_) + " failed";
    }
    return "";
  }

  int osd_;
  bool down_ = false;
};

}  // namespace rbdluks::testing
