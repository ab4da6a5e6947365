// ClusterFixture: a test connected to the cluster the CTest fixture "ceph" starts (CEPH_CONF), with
// an I/O context on pool kPool. The base of the RBD test fixtures.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "rbd_connection.h"

namespace rbdluks::testing {

inline const std::string kPool = "rbd";

class ClusterFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(std::getenv("CEPH_CONF"), nullptr) << "run through ctest, or set CEPH_CONF to a test cluster";
    auto connection = RbdConnection::connect({});
    ASSERT_TRUE(connection) << connection.error().message();
    connection_ = *connection;
    auto pool = connection_->open_pool(kPool, "");
    ASSERT_TRUE(pool) << pool.error().message();
    pool_ = std::move(*pool);
  }

  rados_ioctx_t io() const { return pool_.get(); }

  std::shared_ptr<RbdConnection> connection_;
  IoCtxHandle pool_{nullptr, rados_ioctx_destroy};
};

}  // namespace rbdluks::testing
