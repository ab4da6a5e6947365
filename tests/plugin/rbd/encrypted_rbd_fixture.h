// Test support for the encrypted RBD layer (dispatch layer, C and C++ APIs, stress test): a
// connection to the test cluster that the CTest fixture "ceph" starts (CEPH_CONF), LUKS-formatted
// RBD images with a fast KDF, and cleanup of every image a test made, clones and snapshots included.
#pragma once

#include <gtest/gtest.h>
#include <rbd/librbd.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "cluster_fixture.h"
#include "luks_volume.h"
#include "random.h"
#include "rbd_connection.h"
#include "rbd_image.h"

namespace rbdluks::testing {

inline constexpr uint64_t kMiB = uint64_t{1} << 20;
inline const std::string kPassphrase = "correct horse battery staple";

inline std::span<const uint8_t> bytes_of(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

inline std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(gen());
  return v;
}

// The image's volume key, as its header holds it now.
inline SecureBuffer header_volume_key(const std::shared_ptr<RbdConnection>& connection, const std::string& name) {
  auto raw = open_rbd_image(connection, {kPool, "", name, std::nullopt}, OpenMode::read_only);
  EXPECT_TRUE(raw) << raw.error().message();
  if (!raw) return {};
  auto volume = load_luks(**raw);
  EXPECT_TRUE(volume) << volume.error().message();
  if (!volume) return {};
  auto key = (*volume)->open(bytes_of(kPassphrase));
  EXPECT_TRUE(key) << key.error().message();
  return key ? std::move(key->volume_key) : SecureBuffer{};
}

struct LuksFormat {
  int version = 2;
  uint32_t sector_size = 4096;  // LUKS1 is always 512
  uint64_t data_offset = 0;     // 0: librbd's default for the version
  int order = 0;                // RADOS object size 2^order; 0: the cluster's default (4 MiB)
  uint64_t stripe_unit = 0;     // fancy striping (with order set): stripe unit and count
  uint64_t stripe_count = 0;
  std::string pool = kPool;
};

class EncryptedRbdFixture : public ClusterFixture {
 protected:
  // Removes the images in reverse order of creation (clones before their parents), each with its
  // snapshots.
  void TearDown() override {
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
      rbd_image_t image = nullptr;
      if (rbd_open(io(), it->c_str(), &image, nullptr) == 0) {
        std::vector<rbd_snap_info_t> snaps(16);
        int max = static_cast<int>(snaps.size());
        const int n = rbd_snap_list(image, snaps.data(), &max);
        for (int i = 0; i < n; ++i) {
          rbd_snap_unprotect(image, snaps[i].name);
          rbd_snap_remove(image, snaps[i].name);
        }
        if (n >= 0) rbd_snap_list_end(snaps.data());
        rbd_close(image);
      }
      rbd_remove(io(), it->c_str());
    }
  }

  // A name unique to this test and process, removed in TearDown.
  std::string fresh_name(const std::string& tag = "img") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "-" + info->name() + "-" + tag + "-" +
                       std::to_string(getpid()) + "-" + std::to_string(created_.size());
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    created_.push_back(name);
    return name;
  }

  // An image in layout.pool with the cluster's defaults, or with the object size and striping of
  // `layout` (and no feature but layering).
  std::unique_ptr<RbdImage> create_raw(const std::string& name, uint64_t raw_size, const LuksFormat& layout = {}) {
    const RbdImageSpec spec{layout.pool, "", name, std::nullopt};
    if (layout.order == 0) {
      auto image = create_rbd_image(connection_, spec, raw_size);
      EXPECT_TRUE(image) << image.error().message();
      return image ? std::move(*image) : nullptr;
    }
    int order = layout.order;
    const uint64_t features = RBD_FEATURE_LAYERING | (layout.stripe_unit != 0 ? RBD_FEATURE_STRIPINGV2 : 0);
    const uint64_t stripe_unit = layout.stripe_unit != 0 ? layout.stripe_unit : uint64_t{1} << order;
    const uint64_t stripe_count = layout.stripe_count != 0 ? layout.stripe_count : 1;
    auto pool = connection_->open_pool(layout.pool, "");
    EXPECT_TRUE(pool) << pool.error().message();
    if (!pool) return nullptr;
    EXPECT_EQ(rbd_create3(pool->get(), name.c_str(), raw_size, features, &order, stripe_unit, stripe_count), 0);
    auto image = open_rbd_image(connection_, spec, OpenMode::read_write);
    EXPECT_TRUE(image) << image.error().message();
    return image ? std::move(*image) : nullptr;
  }

  static uint64_t default_data_offset(int version) { return version == 1 ? 4 * kMiB : 16 * kMiB; }

  // Creates an image with plaintext_size bytes after the LUKS header (by default at librbd's data
  // offsets: 16 MiB for LUKS2, 4 MiB for LUKS1) and formats it with kPassphrase and a fast KDF.
  std::string create_luks_image(uint64_t plaintext_size, LuksFormat format = {}) {
    const std::string name = fresh_name();
    const uint64_t data_offset = format.data_offset != 0 ? format.data_offset : default_data_offset(format.version);
    auto raw = create_raw(name, data_offset + plaintext_size, format);
    if (!raw) return name;
    FormatOptions options;
    options.version = format.version;
    options.sector_size = format.version == 1 ? 512 : format.sector_size;
    options.data_offset = data_offset;
    if (format.version == 1) {
      options.kdf = KdfRequest{.type = KdfType::pbkdf2, .force_iterations = 1000};
    } else {
      options.kdf = KdfRequest{.type = KdfType::argon2id, .force_iterations = 4, .max_memory_kib = 32, .parallel = 1};
    }
    std::vector<uint8_t> key(64);
    EXPECT_TRUE(fill_random(key));
    auto volume = format_luks(*raw, options, key, bytes_of(kPassphrase));
    EXPECT_TRUE(volume) << volume.error().message();
    return name;
  }

  std::vector<std::string> created_;
};

}  // namespace rbdluks::testing
