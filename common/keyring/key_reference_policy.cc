// KeyReferencePolicy: the accepted list, parsed once and matched lexically.
#include "key_reference_policy.h"

#include <algorithm>
#include <string_view>

namespace rbdluks {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

// Whether path names a file directly in directory, as written: "DIR/NAME" with one plain NAME.
bool directly_in(const std::string& path, const std::string& directory) {
  const std::string prefix = directory == "/" ? directory : directory + "/";
  if (!path.starts_with(prefix)) return false;
  const std::string_view name = std::string_view(path).substr(prefix.size());
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos;
}

}  // namespace

Result<KeyReferencePolicy> KeyReferencePolicy::parse(const std::string& text,
                                                     const std::vector<std::string>& keyring_schemes) {
  auto usage = [&](const std::string& why) {
    return Error(Errc::usage, "accepted key references '" + text + "': " + why);
  };
  Accepted accepted;
  accepted.text = text;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string entry(trim(std::string_view(text).substr(start, end - start)));
    start = end + 1;
    if (entry.empty()) return usage("an empty entry (expected a scheme or file:DIR)");
    if (entry.starts_with("file:")) {
      std::string directory = entry.substr(5);
      if (!directory.starts_with('/')) return usage("the directory in '" + entry + "' is not absolute");
      while (directory.size() > 1 && directory.back() == '/') directory.pop_back();
      accepted.file_directories.push_back(std::move(directory));
    } else if (std::find(keyring_schemes.begin(), keyring_schemes.end(), entry) != keyring_schemes.end()) {
      accepted.schemes.push_back(entry);
    } else {
      std::string known;
      for (const std::string& scheme : keyring_schemes) known += (known.empty() ? "" : ", ") + scheme;
      return usage("'" + entry + "' is neither a keyring (" + known + ") nor file:DIR");
    }
  }
  KeyReferencePolicy policy;
  policy.accepted_ = std::move(accepted);
  return policy;
}

Status KeyReferencePolicy::check(const KeyReference& reference, const std::string& where) const {
  if (!accepted_) return {};
  const auto& schemes = accepted_->schemes;
  if (std::find(schemes.begin(), schemes.end(), reference.scheme) != schemes.end()) return {};
  if (reference.scheme == "file") {
    for (const std::string& directory : accepted_->file_directories) {
      if (directly_in(reference.locator, directory)) return {};
    }
  }
  return Error(Errc::key_unavailable, "key reference " + reference.str() + " in " + where +
                                          " is not accepted (accepted: " + accepted_->text + ")");
}

}  // namespace rbdluks
