// RbdConnection: librados setup in the order the Ceph tools use (conf file, CEPH_ARGS, command line)
// and errors that say which cluster, which client and what to change.
#include "rbd_connection.h"

#include <rbd/librbd.hpp>

#include <cerrno>
#include <cstdlib>
#include <sstream>
#include <vector>

namespace rbdluks {
namespace {

constexpr unsigned kDefaultMountTimeoutS = 20;

Result<unsigned> mount_timeout_seconds() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): rbd-luks never writes the environment.
  const char* env = std::getenv("RBD_LUKS_MOUNT_TIMEOUT");
  if (env == nullptr || *env == '\0') return kDefaultMountTimeoutS;
  char* end = nullptr;
  errno = 0;
  const unsigned long value = std::strtoul(env, &end, 10);
  if (errno != 0 || *end != '\0' || value == 0 || value > 86400 || *env == '-') {
    return Error(Errc::usage,
                 "RBD_LUKS_MOUNT_TIMEOUT must be a number of seconds in 1..86400, not '" + std::string(env) + "'");
  }
  return static_cast<unsigned>(value);
}

// CEPH_ARGS, split on white space as the Ceph tools split it. We parse it ourselves rather than
// with rados_conf_parse_env: that caches the variable for the life of the process (so a later
// connection would not see a change), and ignores --id/--name.
std::vector<std::string> ceph_args() {
  std::vector<std::string> args;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): rbd-luks never writes the environment.
  if (const char* env = std::getenv("CEPH_ARGS")) {
    std::istringstream words(env);
    for (std::string w; words >> w;) args.push_back(w);
  }
  return args;
}

// The client name given by --id/--user/-i or --name/-n; the last one wins, as in Ceph's parser.
std::string client_name_from(const std::vector<std::string>& args) {
  std::string name;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::string value;
    if (const size_t eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[i + 1];
    }
    const bool is_id = flag == "--id" || flag == "--user" || flag == "-i";
    if (!is_id && flag != "--name" && flag != "-n") continue;
    if (args[i] == flag) ++i;  // the value was the next word
    if (value.empty()) continue;
    name = is_id ? "client." + value : value;
  }
  return name;
}

// Ceph options in CEPH_ARGS ("--keyring=K", "--client_mount_timeout 5", ...); others are skipped.
Status apply_ceph_args(rados_t cluster, const std::vector<std::string>& args) {
  std::vector<const char*> argv{"rbd-luks"};  // librados skips argv[0]
  for (const auto& a : args) argv.push_back(a.c_str());
  if (const int r = rados_conf_parse_argv(cluster, static_cast<int>(argv.size()), argv.data()); r < 0) {
    return Error(Errc::usage, ceph_error(r, "parse CEPH_ARGS").message());
  }
  return {};
}

std::string conf_get(rados_t cluster, const char* option) {
  std::vector<char> buf(4096);
  if (rados_conf_get(cluster, option, buf.data(), buf.size()) != 0) return {};
  return buf.data();
}

Status conf_set(rados_t cluster, const char* option, const std::string& value) {
  if (const int r = rados_conf_set(cluster, option, value.c_str()); r < 0) {
    return ceph_error(r, std::string("set Ceph option ") + option + "=" + value);
  }
  return {};
}

// Op timeouts of 0 mean "wait forever"; only those get our bound, so a configured value stays.
Status bound_op_timeout(rados_t cluster, const char* option, unsigned seconds) {
  const std::string current = conf_get(cluster, option);
  if (!current.empty() && std::strtod(current.c_str(), nullptr) > 0) return {};
  return conf_set(cluster, option, std::to_string(seconds));
}

}  // namespace

Error ceph_error(int r, const std::string& what) {
  const std::error_code code(-r, std::generic_category());
  if (r == -ENOENT) return {Errc::not_found, what + ": " + code.message()};
  return {code, what + ": " + code.message()};
}

Result<std::shared_ptr<RbdConnection>> RbdConnection::connect(const RbdConnectionOptions& options) {
  RL_ASSIGN(const unsigned timeout, mount_timeout_seconds());
  const std::vector<std::string> env_args = ceph_args();
  std::string name = options.client_name;
  if (name.empty()) name = client_name_from(env_args);
  if (name.empty()) name = "client.admin";

  rados_t cluster = nullptr;
  if (const int r = rados_create2(&cluster, options.cluster.c_str(), name.c_str(), 0); r < 0) {
    return ceph_error(r, "create Ceph client " + name + " for cluster " + options.cluster);
  }
  std::shared_ptr<RbdConnection> connection(new RbdConnection(cluster, name));

  // An explicit conf (-c or CEPH_CONF) must be readable; Ceph's default search path may find nothing.
  std::string conf = options.conf_file;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): rbd-luks never writes the environment.
  if (conf.empty() && std::getenv("CEPH_CONF") != nullptr) conf = std::getenv("CEPH_CONF");
  bool conf_read = false;
  if (!conf.empty()) {
    if (const int r = rados_conf_read_file(cluster, conf.c_str()); r < 0) {
      return Error(Errc::failure, ceph_error(r, "read Ceph configuration " + conf).message());
    }
    conf_read = true;
  } else {
    conf_read = rados_conf_read_file(cluster, nullptr) == 0;
  }
  RL_TRY(apply_ceph_args(cluster, env_args));
  if (!options.keyring.empty()) RL_TRY(conf_set(cluster, "keyring", options.keyring));
  RL_TRY(conf_set(cluster, "client_mount_timeout", std::to_string(timeout)));
  RL_TRY(bound_op_timeout(cluster, "rados_mon_op_timeout", timeout));
  RL_TRY(bound_op_timeout(cluster, "rados_osd_op_timeout", 3 * timeout));

  const std::string mon_host = conf_get(cluster, "mon_host");
  if (mon_host.empty() && !conf_read) {
    return Error(Errc::failure, "connect to Ceph as " + name +
                                    ": no ceph.conf found and no monitors given (use -c FILE or CEPH_CONF)");
  }
  const std::string where = "connect to Ceph at " + (mon_host.empty() ? std::string("(DNS SRV)") : mon_host) +
                            (conf.empty() ? "" : " (conf " + conf + ")") + " as " + name;
  if (const int r = rados_connect(cluster); r < 0) {
    switch (-r) {
      case ETIMEDOUT:
        return Error(Errc::failure, where + ": no monitor answered within " + std::to_string(timeout) +
                                        " s (RBD_LUKS_MOUNT_TIMEOUT sets the wait)");
      case ENOENT:
        return Error(Errc::failure,
                     where + ": no keyring found (looked in " + conf_get(cluster, "keyring") + "; use --keyring FILE)");
      case EACCES:
      case EPERM:
        return Error(Errc::failure, where + ": access denied (wrong key or client name?)");
      default:
        return Error(Errc::failure, ceph_error(r, where).message());
    }
  }
  return connection;
}

std::shared_ptr<RbdConnection> RbdConnection::borrow(rados_t cluster) {
  return std::shared_ptr<RbdConnection>(new RbdConnection(cluster, "", false));
}

RbdConnection::~RbdConnection() {
  if (owned_) rados_shutdown(cluster_);
}

Result<IoCtxHandle> RbdConnection::open_pool(const std::string& pool, const std::string& name_space) {
  rados_ioctx_t io = nullptr;
  if (const int r = rados_ioctx_create(cluster_, pool.c_str(), &io); r < 0) {
    if (r == -ENOENT) return Error(Errc::not_found, "pool '" + pool + "' does not exist");
    return ceph_error(r, "open pool '" + pool + "' as " + client_name_);
  }
  IoCtxHandle handle(io, rados_ioctx_destroy);
  if (!name_space.empty()) {
    bool exists = false;
    librados::IoCtx cxx_io;
    librados::IoCtx::from_rados_ioctx_t(io, cxx_io);
    if (const int r = librbd::RBD().namespace_exists(cxx_io, name_space.c_str(), &exists); r < 0) {
      return ceph_error(r, "look up namespace '" + name_space + "' in pool '" + pool + "'");
    }
    if (!exists) {
      return Error(Errc::not_found, "namespace '" + name_space + "' does not exist in pool '" + pool + "'");
    }
    rados_ioctx_set_namespace(io, name_space.c_str());
  }
  return handle;
}

}  // namespace rbdluks
