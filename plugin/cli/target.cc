// Target parsing and opening. Files are common/io/file_image; RBD images are plugin/rbd/rbd_image.
#include "target.h"

#include <sys/stat.h>

#include "rbd_image.h"

namespace rbdluks::cli {

Result<Target> parse_target(const std::string& text) {
  Target t;
  t.spec = text;
  if (text.rfind("file:", 0) == 0) {
    t.kind = Target::Kind::file;
    t.path = text.substr(5);
    if (t.path.empty()) return Error(Errc::usage, "target '" + text + "' has an empty path");
    return t;
  }
  std::string rest = text.rfind("rbd:", 0) == 0 ? text.substr(4) : text;
  t.kind = Target::Kind::rbd;
  if (const size_t at = rest.find('@'); at != std::string::npos) {
    t.snapshot = rest.substr(at + 1);
    rest.resize(at);
    if (t.snapshot->empty()) return Error(Errc::usage, "target '" + text + "' has an empty snapshot name");
  }
  const size_t first = rest.find('/');
  const size_t last = rest.rfind('/');
  if (first == std::string::npos) {
    return Error(Errc::usage, "target '" + text + "' is not file:PATH, rbd:POOL/IMAGE or POOL/IMAGE");
  }
  t.pool = rest.substr(0, first);
  t.image = rest.substr(last + 1);
  if (first != last) t.name_space = rest.substr(first + 1, last - first - 1);
  if (t.pool.empty() || t.image.empty() || (first != last && t.name_space.empty()) ||
      t.name_space.find('/') != std::string::npos) {
    return Error(Errc::usage, "target '" + text + "' is not rbd:POOL/IMAGE or rbd:POOL/NAMESPACE/IMAGE");
  }
  return t;
}

namespace {

Result<RbdConnectionOptions> connection_options_from(const CommandLine& cl) {
  RbdConnectionOptions options;
  options.conf_file = cl.get("conf").value_or("");
  options.keyring = cl.get("keyring").value_or("");
  options.cluster = cl.get("cluster").value_or("ceph");
  const auto id = cl.get("id");
  const auto name = cl.get("name");
  if (id && name) return Error(Errc::usage, "--id and --name both name the Ceph client; give one of them");
  if (id) {
    if (id->empty()) return Error(Errc::usage, "--id needs a client id, e.g. --id admin");
    options.client_name = "client." + *id;
  }
  if (name) {
    const size_t dot = name->find('.');
    if (dot == 0 || dot == std::string::npos || dot + 1 == name->size()) {
      return Error(Errc::usage, "--name must be TYPE.ID, e.g. client.admin, not '" + *name + "'");
    }
    options.client_name = *name;
  }
  return options;
}

RbdImageSpec rbd_spec_of(const Target& target) {
  return {target.pool, target.name_space, target.image, target.snapshot};
}

}  // namespace

Result<std::shared_ptr<RbdConnection>> connect_for(const CommandLine& cl) {
  RL_ASSIGN(auto options, connection_options_from(cl));
  return RbdConnection::connect(options);
}

Result<std::unique_ptr<RawImage>> open_target(const CommandLine& cl, const Target& target, OpenMode mode) {
  if (target.kind == Target::Kind::file) return open_file_image(target.path, mode);
  RL_ASSIGN(auto image, open_rbd_target(cl, target, mode, "this command"));
  return std::unique_ptr<RawImage>(std::move(image));
}

Result<std::unique_ptr<RbdImage>> open_rbd_target(const CommandLine& cl, const Target& target, OpenMode mode,
                                                  const std::string& command) {
  if (target.kind != Target::Kind::rbd) {
    return Error(Errc::usage, command + " serves RBD images, not " + target.spec);
  }
  RL_ASSIGN(auto connection, connect_for(cl));
  return open_rbd_image(std::move(connection), rbd_spec_of(target), mode);
}

Result<std::unique_ptr<RawImage>> create_target(const CommandLine& cl, const Target& target, uint64_t raw_size) {
  if (target.kind == Target::Kind::rbd) {
    RL_ASSIGN(auto connection, connect_for(cl));
    RL_ASSIGN(auto image, create_rbd_image(std::move(connection), rbd_spec_of(target), raw_size));
    return std::unique_ptr<RawImage>(std::move(image));
  }
  struct stat st {};
  if (stat(target.path.c_str(), &st) == 0 && !cl.has("force")) {
    return Error(Errc::failure, target.spec + " already exists (use --force to overwrite it)");
  }
  return create_file_image(target.path, raw_size);
}

Status refuse_non_empty_image(const CommandLine& cl, const Target& target, RawImage& image) {
  auto* rbd = dynamic_cast<RbdImage*>(&image);
  if (rbd == nullptr || cl.has("force")) return {};
  RL_ASSIGN(const bool has_data, rbd->has_data());
  if (has_data) {
    return Error(Errc::failure, target.spec + " already holds data and no LUKS header; use --force to overwrite it");
  }
  return {};
}

Status refuse_other_clients(RawImage& image, const std::string& why) {
  auto* rbd = dynamic_cast<RbdImage*>(&image);
  if (rbd == nullptr) return {};
  return rbd->refuse_other_clients(why);
}

Status refuse_image_in_use(const CommandLine& cl, RawImage& image, const std::string& action) {
  if (cl.has("force")) return {};
  return refuse_other_clients(image, "use --force to " + action + " anyway");
}

}  // namespace rbdluks::cli
