// `du`: what an encrypted image takes in the cluster next to what it offers, as `rbd du` shows for
// plain images. Needs no key: allocation is visible without decrypting anything.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "sector_codec.h"
#include "volume_access.h"

namespace rbdluks::cli {
namespace {

std::string mib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

}  // namespace

Status cmd_du(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "du TARGET [--json]"));
  RL_ASSIGN(auto loaded, load_volume(cl, args[0], OpenMode::read_only));
  const VolumeLayout& layout = loaded.volume->layout();
  RL_ASSIGN(const uint64_t raw_size, loaded.image->size());
  const uint64_t size = data_segment_size(raw_size, layout.data_offset, layout.sector_size, layout.data_size);
  // Whole objects the image has itself (a clone's parent's are the parent's), filesystem extents
  // for files.
  RL_ASSIGN(const auto allocated, loaded.image->stored_extents(0, raw_size));
  const uint64_t used = total_length(allocated);
  uint64_t header_used = 0;
  for (const Extent& e : allocated) {
    if (e.offset < layout.data_offset) header_used += std::min(e.end(), layout.data_offset) - e.offset;
  }
  if (cl.has("json")) {
    print_json(nlohmann::json{{"image", loaded.image->name()},
                              {"size", size},
                              {"used", used},
                              {"header_used", header_used},
                              {"data_used", used - header_used},
                              {"data_offset", layout.data_offset}});
    return {};
  }
  std::cout << loaded.image->name() << ": " << size << " bytes of plaintext (" << mib(size) << "), " << used
            << " bytes used (" << mib(used) << "): " << mib(header_used) << " header and keyslots, "
            << mib(used - header_used) << " data\n";
  return {};
}

}  // namespace rbdluks::cli
