// Target parsing and opening. RBD targets are recognised here; their backend lives in plugin/.
#include "target.h"

#include <sys/stat.h>

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

Error rbd_not_available(const Target& target) {
  return {Errc::failure, target.spec + ": RBD targets are not supported by this build yet; use file:PATH"};
}

}  // namespace

Result<std::unique_ptr<RawImage>> open_target(const CommandLine& /*cl*/, const Target& target, OpenMode mode) {
  if (target.kind == Target::Kind::rbd) return rbd_not_available(target);
  return open_file_image(target.path, mode);
}

Result<std::unique_ptr<RawImage>> create_target(const CommandLine& cl, const Target& target, uint64_t raw_size) {
  if (target.kind == Target::Kind::rbd) return rbd_not_available(target);
  struct stat st {};
  if (stat(target.path.c_str(), &st) == 0 && !cl.has("force")) {
    return Error(Errc::failure, target.spec + " already exists (use --force to overwrite it)");
  }
  return create_file_image(target.path, raw_size);
}

}  // namespace rbdluks::cli
