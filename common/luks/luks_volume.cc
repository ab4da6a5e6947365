// load_luks / format_luks: pick the LUKS1 or LUKS2 implementation.
#include "luks_volume.h"

#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "luks1_volume.h"
#include "luks2_volume.h"
#include "printable_text.h"

namespace rbdluks {

nlohmann::json unsupported_reason(const LuksVolume& volume) {
  const Status status = volume.supported();
  return status ? nlohmann::json(nullptr) : nlohmann::json(status.error().message());
}

std::string unsupported_line(const LuksVolume& volume) {
  const Status status = volume.supported();
  return status ? std::string() : "Unsupported:   \t" + printable(status.error().message()) + " (shown, not opened)\n";
}

namespace {

// Why the image's header is not to be read: a decryption's marker (with its progress), or no way
// to know whether there is one. A snapshot keeps the header it had, whatever the marker says.
std::optional<Error> decryption_under_way(RawImage& image) {
  if (image.snapshot()) return std::nullopt;
  auto marker = image.get_metadata(kDecryptionMarkerKey);
  if (!marker) return std::move(marker).error();
  if (!*marker) return std::nullopt;
  const auto json = nlohmann::json::parse(**marker, nullptr, false);
  std::string done;
  if (json.is_object() && json.value("progress", nlohmann::json()).is_number_unsigned() &&
      json.value("data_size", nlohmann::json()).is_number_unsigned()) {
    done = " (" + std::to_string(json["progress"].get<uint64_t>()) + " of " +
           std::to_string(json["data_size"].get<uint64_t>()) + " bytes decrypted)";
  }
  return Error(Errc::failure, image.name() + ": a decryption in place has not finished" + done +
                                  ": the data is partly plain and partly encrypted; finish it by running the same "
                                  "`rbd-luks decrypt` again");
}

}  // namespace

Result<std::unique_ptr<LuksVolume>> load_luks(RawImage& image) {
  // First: the plaintext that moved to the start may itself begin with a LUKS header.
  if (auto decryption = decryption_under_way(image)) return std::move(*decryption);
  uint8_t start[8] = {};
  RL_ASSIGN(const uint64_t size, image.size());
  if (size >= sizeof start) RL_TRY(image.read(0, start));
  const bool luks_magic = std::memcmp(start, "LUKS\xba\xbe", 6) == 0;
  const unsigned version = (unsigned{start[6]} << 8) | start[7];
  if (luks_magic && version == 1) return load_luks1(image);
  if (luks_magic && version != 2) {
    return Error(Errc::unsupported, image.name() + ": LUKS version " + std::to_string(version) + " is not supported");
  }
  // A LUKS2 image whose primary header was destroyed still opens from the secondary copy.
  auto volume = load_luks2(image);
  if (!volume && !luks_magic && volume.error().is(Errc::bad_header)) {
    return Error(Errc::bad_header, image.name() + ": no LUKS header (" + volume.error().message() + ")");
  }
  return volume;
}

bool holds_luks_magic(RawImage& image) {
  uint8_t magic[6] = {};
  auto size = image.size();
  if (!size || *size < sizeof magic || !image.read(0, magic)) return false;
  return std::memcmp(magic, "LUKS\xba\xbe", 6) == 0 || std::memcmp(magic, "SKUL\xba\xbe", 6) == 0;
}

Result<std::unique_ptr<LuksVolume>> format_luks(RawImage& image, const FormatOptions& options,
                                                std::span<const uint8_t> volume_key,
                                                std::span<const uint8_t> passphrase) {
  if (auto decryption = decryption_under_way(image)) return std::move(*decryption);
  if (options.version == 1) return format_luks1(image, options, volume_key, passphrase);
  if (options.version == 2) return format_luks2(image, options, volume_key, passphrase);
  return Error(Errc::usage, "LUKS version " + std::to_string(options.version) + " cannot be formatted");
}

}  // namespace rbdluks
