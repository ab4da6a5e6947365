// RbdImage and RbdConnection against a real cluster (CEPH_CONF points at the test cluster that the
// CTest fixture "ceph" starts): RawImage round trips, metadata, snapshots, namespaces, and the
// errors for missing pools, images and monitors.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <rbd/librbd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <rbd/librbd.hpp>

#include <gtest/gtest.h>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "cluster_faults.h"
#include "cluster_fixture.h"
#include "rbd_image.h"

namespace rbdluks {
namespace {

constexpr uint64_t kMiB = 1 << 20;
using testing::kPool;

std::vector<uint8_t> random_bytes(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(gen());
  return v;
}

// Sets (or unsets, with nullptr) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_.c_str(), old_->c_str(), 1);
    else
      unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

class RbdImageTest : public testing::ClusterFixture {
 protected:
  void TearDown() override {
    for (const auto& [name_space, image] : created_) {
      auto io = connection_->open_pool(kPool, name_space);
      if (io) rbd_remove(io->get(), image.c_str());
    }
    for (const auto& name_space : namespaces_) rbd_namespace_remove(pool_.get(), name_space.c_str());
  }

  // A spec for an image name unique to this test and process, removed in TearDown.
  RbdImageSpec fresh_spec(const std::string& name_space = "") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    RbdImageSpec spec{kPool, name_space, std::string(info->name()) + "-" + std::to_string(getpid()), std::nullopt};
    created_.emplace_back(name_space, spec.image);
    return spec;
  }

  std::string fresh_namespace() {
    const std::string name = "ns-" + std::to_string(getpid());
    EXPECT_EQ(rbd_namespace_create(pool_.get(), name.c_str()), 0);
    namespaces_.push_back(name);
    return name;
  }

  std::unique_ptr<RbdImage> create(const RbdImageSpec& spec, uint64_t size) {
    auto image = create_rbd_image(connection_, spec, size);
    EXPECT_TRUE(image) << image.error().message();
    return image ? std::move(*image) : nullptr;
  }

  std::vector<std::pair<std::string, std::string>> created_;
  std::vector<std::string> namespaces_;
};

TEST_F(RbdImageTest, WritesAndReadsAtBothEnds) {
  const auto spec = fresh_spec();
  auto image = create(spec, 8 * kMiB);
  ASSERT_TRUE(image);
  EXPECT_EQ(image->name(), "rbd:rbd/" + spec.image);
  EXPECT_FALSE(image->read_only());
  ASSERT_EQ(*image->size(), 8 * kMiB);

  const auto head = random_bytes(4096, 1);
  const auto tail = random_bytes(4096, 2);
  ASSERT_TRUE(image->write(0, head));
  ASSERT_TRUE(image->write(8 * kMiB - tail.size(), tail));
  ASSERT_TRUE(image->flush());

  // A fresh connection sees what the first one wrote.
  image.reset();
  auto reopened = open_rbd_image(connection_, spec, OpenMode::read_only);
  ASSERT_TRUE(reopened) << reopened.error().message();
  EXPECT_TRUE((*reopened)->read_only());
  std::vector<uint8_t> got(4096);
  ASSERT_TRUE((*reopened)->read(0, got));
  EXPECT_EQ(got, head);
  ASSERT_TRUE((*reopened)->read(8 * kMiB - got.size(), got));
  EXPECT_EQ(got, tail);
  std::vector<uint8_t> middle(4096, 0xff);
  ASSERT_TRUE((*reopened)->read(4 * kMiB, middle));
  EXPECT_EQ(middle, std::vector<uint8_t>(4096, 0)) << "never-written ranges read as zeros";

  auto write = (*reopened)->write(0, head);
  ASSERT_FALSE(write);
  EXPECT_NE(write.error().message().find("read-only"), std::string::npos) << write.error().message();
}

TEST_F(RbdImageTest, SpansObjectBoundaries) {
  auto image = create(fresh_spec(), 16 * kMiB);
  ASSERT_TRUE(image);
  // 10 MiB starting 1 MiB before the end of the first 4 MiB object: three objects touched.
  const auto data = random_bytes(10 * kMiB, 3);
  ASSERT_TRUE(image->write(3 * kMiB, data));
  std::vector<uint8_t> got(data.size());
  ASSERT_TRUE(image->read(3 * kMiB, got));
  EXPECT_EQ(got, data);
}

TEST_F(RbdImageTest, WriteZeroesClearsARange) {
  auto image = create(fresh_spec(), 12 * kMiB);
  ASSERT_TRUE(image);
  const auto data = random_bytes(12 * kMiB, 10);
  ASSERT_TRUE(image->write(0, data));
  // Unaligned at both ends, covering one whole object in the middle.
  ASSERT_TRUE(image->write_zeroes(3 * kMiB + 100, 6 * kMiB));
  std::vector<uint8_t> got(data.size());
  ASSERT_TRUE(image->read(0, got));
  auto expected = data;
  std::fill(expected.begin() + 3 * kMiB + 100, expected.begin() + 9 * kMiB + 100, 0);
  EXPECT_EQ(got, expected);
  EXPECT_FALSE(image->write_zeroes(12 * kMiB - 10, 20));
}

// librbd 16's default cache (writearound) completes a write before the OSDs have it, and its flush
// can then lose the write's error (design.md, "OSD failures"). RawImage::write is how headers and
// keyslots are written: each write must report its own failure, so a header change on a pool
// that stopped answering fails instead of reporting success for bytes the cluster never took.
TEST_F(RbdImageTest, WriteReportsItsOwnFailureUnderLibrbdsWriteAroundCache) {
  testing::StallablePool pool(connection_->handle());
  const std::string name = "writearound-" + std::to_string(getpid());
  {
    auto pool_io = connection_->open_pool(pool.name(), "");
    ASSERT_TRUE(pool_io) << pool_io.error().message();
    // Layering only: an exclusive lock or object map would add timed-out waits at close.
    int order = 22;
    ASSERT_EQ(rbd_create2(pool_io->get(), name.c_str(), 8 * kMiB, RBD_FEATURE_LAYERING, &order), 0);
  }
  const testing::OwnClient client({{"rbd_cache", "true"},
                                   {"rbd_cache_policy", "writearound"},
                                   {"rbd_cache_writethrough_until_flush", "false"},
                                   {"rados_osd_op_timeout", "1"}},
                                  pool.name());
  rados_ioctx_t own_io = nullptr;
  ASSERT_EQ(rados_ioctx_create2(rados_ioctx_get_cluster(client.io()), rados_ioctx_get_id(client.io()), &own_io), 0);
  auto image = open_rbd_image(nullptr, IoCtxHandle(own_io, rados_ioctx_destroy), name, std::nullopt,
                              OpenMode::read_write, "rbd:" + pool.name() + "/" + name);
  ASSERT_TRUE(image) << image.error().message();
  const auto data = random_bytes(64 * 1024, 20);
  ASSERT_TRUE((*image)->write(0, data));
  ASSERT_TRUE((*image)->flush());

  pool.stall(client);
  const Status written = (*image)->write(0, data);
  ASSERT_FALSE(written) << "a write the cluster never took reported success";
  EXPECT_EQ(written.error().code(), std::error_code(ETIMEDOUT, std::generic_category())) << written.error().message();
  static_cast<void>((*image)->close());
}

TEST_F(RbdImageTest, RefusesIoPastTheEnd) {
  auto image = create(fresh_spec(), 4 * kMiB);
  ASSERT_TRUE(image);
  std::vector<uint8_t> buf(8192);
  auto read = image->read(4 * kMiB - 4096, buf);
  ASSERT_FALSE(read);
  EXPECT_NE(read.error().message().find("pass the end"), std::string::npos) << read.error().message();
  auto write = image->write(4 * kMiB - 4096, buf);
  ASSERT_FALSE(write);
  EXPECT_NE(write.error().message().find("pass the end"), std::string::npos) << write.error().message();
  // Nothing of the refused write landed inside the image either.
  std::vector<uint8_t> tail(4096, 0xff);
  ASSERT_TRUE(image->read(4 * kMiB - 4096, tail));
  EXPECT_EQ(tail, std::vector<uint8_t>(4096, 0));
  EXPECT_FALSE(image->read(5 * kMiB, std::span<uint8_t>(buf.data(), 1)));
}

TEST_F(RbdImageTest, ResizeGrowsAndShrinks) {
  auto image = create(fresh_spec(), 4 * kMiB);
  ASSERT_TRUE(image);
  const auto data = random_bytes(4096, 4);
  ASSERT_TRUE(image->write(0, data));
  ASSERT_TRUE(image->resize(12 * kMiB));
  EXPECT_EQ(*image->size(), 12 * kMiB);
  const auto end = random_bytes(4096, 5);
  ASSERT_TRUE(image->write(12 * kMiB - 4096, end));
  std::vector<uint8_t> got(4096);
  ASSERT_TRUE(image->read(12 * kMiB - 4096, got));
  EXPECT_EQ(got, end);

  ASSERT_TRUE(image->resize(2 * kMiB));
  EXPECT_EQ(*image->size(), 2 * kMiB);
  ASSERT_TRUE(image->read(0, got));
  EXPECT_EQ(got, data);
  EXPECT_FALSE(image->read(2 * kMiB, got));
}

TEST_F(RbdImageTest, MetadataSetGetRemove) {
  auto image = create(fresh_spec(), 4 * kMiB);
  ASSERT_TRUE(image);
  auto absent = image->get_metadata("rbd-luks.test");
  ASSERT_TRUE(absent) << absent.error().message();
  EXPECT_FALSE(absent->has_value());

  ASSERT_TRUE(image->set_metadata("rbd-luks.test", "one"));
  EXPECT_EQ(image->get_metadata("rbd-luks.test")->value_or(""), "one");
  // Longer than the first read buffer, to take the -ERANGE path.
  const std::string long_value(5000, 'x');
  ASSERT_TRUE(image->set_metadata("rbd-luks.test", long_value));
  EXPECT_EQ(image->get_metadata("rbd-luks.test")->value_or(""), long_value);
  ASSERT_TRUE(image->set_metadata("rbd-luks.empty", ""));
  auto empty = image->get_metadata("rbd-luks.empty");
  ASSERT_TRUE(empty && empty->has_value());
  EXPECT_EQ(**empty, "");

  auto removed = image->remove_metadata("rbd-luks.test");
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed) << "the key was there";
  EXPECT_FALSE(image->get_metadata("rbd-luks.test")->has_value());
  auto again = image->remove_metadata("rbd-luks.test");
  ASSERT_TRUE(again) << "removing an absent key is not an error";
  EXPECT_FALSE(*again) << "and says the key was not there";
  // Metadata lives in the image header, not in data objects.
  EXPECT_FALSE(*image->has_data());
}

TEST_F(RbdImageTest, HasDataOnlyAfterAWrite) {
  auto image = create(fresh_spec(), 64 * kMiB);
  ASSERT_TRUE(image);
  auto fresh = image->has_data();
  ASSERT_TRUE(fresh) << fresh.error().message();
  EXPECT_FALSE(*fresh);
  const auto data = random_bytes(512, 6);
  ASSERT_TRUE(image->write(40 * kMiB, data));
  EXPECT_TRUE(*image->has_data());
}

TEST_F(RbdImageTest, SnapshotIsReadOnlyAndKeepsOldData) {
  auto spec = fresh_spec();
  auto image = create(spec, 4 * kMiB);
  ASSERT_TRUE(image);
  const auto before = random_bytes(4096, 7);
  const auto after = random_bytes(4096, 8);
  ASSERT_TRUE(image->write(0, before));
  ASSERT_TRUE(image->set_metadata("k", "v"));
  ASSERT_EQ(image->image().snap_create("s1"), 0);
  ASSERT_TRUE(image->write(0, after));

  auto snap_spec = spec;
  snap_spec.snapshot = "s1";
  // Asking for read-write still gives a read-only view of a snapshot.
  auto snap = open_rbd_image(connection_, snap_spec, OpenMode::read_write);
  ASSERT_TRUE(snap) << snap.error().message();
  EXPECT_TRUE((*snap)->read_only());
  EXPECT_EQ((*snap)->name(), "rbd:rbd/" + spec.image + "@s1");
  std::vector<uint8_t> got(4096);
  ASSERT_TRUE((*snap)->read(0, got));
  EXPECT_EQ(got, before);
  auto write = (*snap)->write(0, after);
  ASSERT_FALSE(write);
  EXPECT_NE(write.error().message().find("@s1 is open read-only"), std::string::npos) << write.error().message();
  EXPECT_FALSE((*snap)->set_metadata("k", "w"));
  EXPECT_FALSE((*snap)->resize(8 * kMiB));
  ASSERT_TRUE(image->read(0, got));
  EXPECT_EQ(got, after);

  snap->reset();
  EXPECT_EQ(image->image().snap_remove("s1"), 0);
}

TEST_F(RbdImageTest, CreateRefusesAnExistingImage) {
  const auto spec = fresh_spec();
  ASSERT_TRUE(create(spec, 4 * kMiB));
  auto again = create_rbd_image(connection_, spec, 4 * kMiB);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message().find("rbd:rbd/" + spec.image + " already exists"), std::string::npos)
      << again.error().message();
}

TEST_F(RbdImageTest, MissingImageIsNotFound) {
  const RbdImageSpec spec{kPool, "", "no-such-image-" + std::to_string(getpid()), std::nullopt};
  auto image = open_rbd_image(connection_, spec, OpenMode::read_only);
  ASSERT_FALSE(image);
  EXPECT_TRUE(image.error().is(Errc::not_found));
  EXPECT_NE(image.error().message().find("image rbd:rbd/" + spec.image + " does not exist"), std::string::npos)
      << image.error().message();
}

TEST_F(RbdImageTest, MissingSnapshotIsNotFound) {
  auto spec = fresh_spec();
  ASSERT_TRUE(create(spec, 4 * kMiB));
  spec.snapshot = "nosnap";
  auto image = open_rbd_image(connection_, spec, OpenMode::read_only);
  ASSERT_FALSE(image);
  EXPECT_TRUE(image.error().is(Errc::not_found));
  EXPECT_NE(image.error().message().find("snapshot 'nosnap' of rbd:rbd/" + spec.image + " does not exist"),
            std::string::npos)
      << image.error().message();
}

TEST_F(RbdImageTest, MissingPoolIsNotFound) {
  const RbdImageSpec spec{"no-such-pool", "", "img", std::nullopt};
  auto image = open_rbd_image(connection_, spec, OpenMode::read_only);
  ASSERT_FALSE(image);
  EXPECT_TRUE(image.error().is(Errc::not_found));
  EXPECT_EQ(image.error().message(), "pool 'no-such-pool' does not exist");
}

TEST_F(RbdImageTest, ImagesInANamespace) {
  const auto name_space = fresh_namespace();
  const auto spec = fresh_spec(name_space);
  auto image = create(spec, 4 * kMiB);
  ASSERT_TRUE(image);
  EXPECT_EQ(image->name(), "rbd:rbd/" + name_space + "/" + spec.image);
  const auto data = random_bytes(4096, 9);
  ASSERT_TRUE(image->write(4096, data));
  image.reset();

  auto reopened = open_rbd_image(connection_, spec, OpenMode::read_write);
  ASSERT_TRUE(reopened) << reopened.error().message();
  std::vector<uint8_t> got(4096);
  ASSERT_TRUE((*reopened)->read(4096, got));
  EXPECT_EQ(got, data);

  // The same image name outside the namespace does not exist.
  auto outside = open_rbd_image(connection_, RbdImageSpec{kPool, "", spec.image, std::nullopt}, OpenMode::read_only);
  ASSERT_FALSE(outside);
  EXPECT_TRUE(outside.error().is(Errc::not_found));
}

TEST_F(RbdImageTest, MissingNamespaceIsNotFound) {
  const RbdImageSpec spec{kPool, "no-such-ns", "img", std::nullopt};
  auto image = open_rbd_image(connection_, spec, OpenMode::read_only);
  ASSERT_FALSE(image);
  EXPECT_TRUE(image.error().is(Errc::not_found));
  EXPECT_EQ(image.error().message(), "namespace 'no-such-ns' does not exist in pool 'rbd'");
  auto created = create_rbd_image(connection_, spec, 4 * kMiB);
  ASSERT_FALSE(created);
  EXPECT_TRUE(created.error().is(Errc::not_found));
}

// Connection setup and its failures.
class RbdConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* conf = std::getenv("CEPH_CONF");
    ASSERT_NE(conf, nullptr) << "run through ctest, or set CEPH_CONF to a test cluster";
    cluster_dir_ = std::filesystem::path(conf).parent_path();
    dir_ = std::filesystem::temp_directory_path() / ("rbd-luks-conn-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A conf naming a monitor on a port where nothing listens, with the test cluster's valid keyring.
  std::string dead_cluster_conf() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    close(fd);  // the port is free again, and nothing listens on it
    const std::string path = (dir_ / "dead.conf").string();
    std::ofstream(path) << "[global]\nmon host = 127.0.0.1:" << ntohs(addr.sin_port)
                        << "\nkeyring = " << (cluster_dir_ / "ceph.client.admin.keyring").string() << "\n";
    return path;
  }

  static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  std::filesystem::path cluster_dir_;
  std::filesystem::path dir_;
};

TEST_F(RbdConnectionTest, ConnectsWithCephConf) {
  auto connection = RbdConnection::connect({});
  ASSERT_TRUE(connection) << connection.error().message();
  EXPECT_TRUE((*connection)->open_pool("rbd", ""));
}

TEST_F(RbdConnectionTest, DeadClusterFailsWithinTheDefaultBound) {
  ScopedEnv no_override("RBD_LUKS_MOUNT_TIMEOUT", nullptr);
  RbdConnectionOptions options;
  options.conf_file = dead_cluster_conf();
  const auto start = std::chrono::steady_clock::now();
  auto connection = RbdConnection::connect(options);
  const double elapsed = seconds_since(start);
  ASSERT_FALSE(connection);
  EXPECT_LT(elapsed, 30.0);
  EXPECT_NE(connection.error().message().find("no monitor answered within 20 s"), std::string::npos)
      << connection.error().message();
  EXPECT_NE(connection.error().message().find(options.conf_file), std::string::npos);
}

TEST_F(RbdConnectionTest, MountTimeoutFromEnvironment) {
  ScopedEnv quick("RBD_LUKS_MOUNT_TIMEOUT", "2");
  RbdConnectionOptions options;
  options.conf_file = dead_cluster_conf();
  const auto start = std::chrono::steady_clock::now();
  auto connection = RbdConnection::connect(options);
  const double elapsed = seconds_since(start);
  ASSERT_FALSE(connection);
  EXPECT_LT(elapsed, 8.0);
  EXPECT_GE(elapsed, 1.5);
  EXPECT_NE(connection.error().message().find("within 2 s"), std::string::npos) << connection.error().message();
}

TEST_F(RbdConnectionTest, BadMountTimeoutIsAUsageError) {
  ScopedEnv bad("RBD_LUKS_MOUNT_TIMEOUT", "soon");
  auto connection = RbdConnection::connect({});
  ASSERT_FALSE(connection);
  EXPECT_TRUE(connection.error().is(Errc::usage));
}

TEST_F(RbdConnectionTest, ExplicitConfMustExist) {
  RbdConnectionOptions options;
  options.conf_file = (dir_ / "missing.conf").string();
  auto connection = RbdConnection::connect(options);
  ASSERT_FALSE(connection);
  EXPECT_NE(connection.error().message().find("read Ceph configuration " + options.conf_file), std::string::npos)
      << connection.error().message();
}

TEST_F(RbdConnectionTest, NoConfAnywhere) {
  ScopedEnv no_conf("CEPH_CONF", nullptr);
  ScopedEnv no_args("CEPH_ARGS", nullptr);
  // Ceph's search path includes ./ceph.conf; run where there is none.
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir_);
  auto connection = RbdConnection::connect({});
  std::filesystem::current_path(cwd);
  if (std::filesystem::exists("/etc/ceph/ceph.conf")) GTEST_SKIP() << "this machine has /etc/ceph/ceph.conf";
  ASSERT_FALSE(connection);
  EXPECT_NE(connection.error().message().find("no ceph.conf found"), std::string::npos) << connection.error().message();
}

TEST_F(RbdConnectionTest, MissingKeyring) {
  RbdConnectionOptions options;
  options.keyring = (dir_ / "no-keyring").string();
  auto connection = RbdConnection::connect(options);
  ASSERT_FALSE(connection);
  EXPECT_NE(connection.error().message().find("no keyring found"), std::string::npos) << connection.error().message();
  EXPECT_NE(connection.error().message().find(options.keyring), std::string::npos) << connection.error().message();
}

TEST_F(RbdConnectionTest, ClientNameFromCephArgsAndOptions) {
  ScopedEnv args("CEPH_ARGS", "--id nosuchclient");
  auto from_env = RbdConnection::connect({});
  ASSERT_FALSE(from_env) << "CEPH_ARGS --id is honoured, and that client has no key";
  EXPECT_NE(from_env.error().message().find("client.nosuchclient"), std::string::npos) << from_env.error().message();

  RbdConnectionOptions options;
  options.client_name = "client.admin";  // the command line wins over CEPH_ARGS
  auto explicit_name = RbdConnection::connect(options);
  EXPECT_TRUE(explicit_name) << explicit_name.error().message();
}

TEST_F(RbdConnectionTest, CephArgsOptionsApply) {
  // CEPH_ARGS carries ordinary options too: here a keyring that does not exist.
  const std::string arg = "--keyring=" + (dir_ / "nothing").string();
  ScopedEnv args("CEPH_ARGS", arg.c_str());
  auto connection = RbdConnection::connect({});
  ASSERT_FALSE(connection);
  EXPECT_NE(connection.error().message().find("no keyring found"), std::string::npos) << connection.error().message();
}

}  // namespace
}  // namespace rbdluks
