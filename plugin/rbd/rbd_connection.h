// RbdConnection: one connection to a Ceph cluster through librados, set up the way the `rados` and
// `rbd` tools set theirs up (conf file, CEPH_CONF, CEPH_ARGS, client name, keyring), but with bounded
// timeouts so that a dead cluster fails in seconds with a message instead of hanging for 300 s.
//
// Connections and pools use librados's C API, which is stable across Ceph releases and never
// throws; images are opened through librbd's C++ API for its buffer lists (see rbd_image.h).
#pragma once

#include <rados/librados.h>

#include <memory>
#include <string>
#include <type_traits>

#include "result.h"

namespace rbdluks {

struct RbdConnectionOptions {
  std::string conf_file;    // empty: CEPH_CONF, then Ceph's search path (/etc/ceph/$cluster.conf, ...)
  std::string client_name;  // "client.ID"; empty: --id/--name in CEPH_ARGS, then client.admin
  std::string keyring;      // empty: what the conf file or CEPH_ARGS say, else Ceph's default paths
  std::string cluster = "ceph";
};

// Owns a rados_ioctx_t. It must not outlive the RbdConnection that opened it.
using IoCtxHandle = std::unique_ptr<std::remove_pointer_t<rados_ioctx_t>, void (*)(rados_ioctx_t)>;

class RbdConnection {
 public:
  // Connects. client_mount_timeout is T seconds, where T is $RBD_LUKS_MOUNT_TIMEOUT or 20. Op
  // timeouts left unbounded (0) by the configuration become T for monitor ops and 3*T for OSD ops,
  // since data operations may wait behind peering on a healthy cluster.
  static Result<std::shared_ptr<RbdConnection>> connect(const RbdConnectionOptions& options);

  // Wraps a cluster handle the caller owns (e.g. a library client's); it is not shut down here.
  static std::shared_ptr<RbdConnection> borrow(rados_t cluster);

  ~RbdConnection();
  RbdConnection(const RbdConnection&) = delete;
  RbdConnection& operator=(const RbdConnection&) = delete;

  // An I/O context on `pool`, inside `name_space` when it is not empty. A missing pool or namespace
  // is Errc::not_found.
  Result<IoCtxHandle> open_pool(const std::string& pool, const std::string& name_space);

  rados_t handle() const { return cluster_; }

 private:
  RbdConnection(rados_t cluster, std::string client_name, bool owned = true)
      : cluster_(cluster), client_name_(std::move(client_name)), owned_(owned) {}

  rados_t cluster_;
  std::string client_name_;
  bool owned_;
};

// An Error for a negative errno `r` returned by librados/librbd: "what: strerror". -ENOENT becomes
// Errc::not_found; every other errno stays what it is (std::generic_category()), so that callers
// of the libraries see -ESHUTDOWN (blocklisted), -ETIMEDOUT and the like as librbd reported them.
// The command line treats them all as Errc::failure (exit 1).
Error ceph_error(int r, const std::string& what);

}  // namespace rbdluks
