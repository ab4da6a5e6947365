// load_and_describe: the header path of `rbd-luks dump` without the command line around it.
#include "unlocked_surface.h"

#include <nlohmann/json.hpp>

#include "kdf_cost_limits.h"
#include "luks_volume.h"

namespace rbdluks::fuzz {

void load_and_describe(RawImage& image) {
  auto volume = load_luks(image);
  if (!volume) {
    // The CLI prints the message; building it must not fail either.
    static_cast<void>(volume.error().message().size());
    return;
  }
  const LuksVolume& v = **volume;
  static_cast<void>(v.layout());
  static_cast<void>(v.supported());
  for (const KeyslotInfo& keyslot : v.keyslots()) {
    if (keyslot.active) static_cast<void>(kdf_cost_in_limits(keyslot.kdf));
  }
  // As `dump --json` prints it (plugin/cli's print_json): invalid UTF-8 from the header is replaced,
  // never thrown about.
  static_cast<void>(v.describe().dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
  static_cast<void>(v.describe_text());
}

}  // namespace rbdluks::fuzz
