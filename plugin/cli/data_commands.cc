// Commands that move plaintext: import, export, read, write, resize. The copies are thin_copy's:
// chunks of bounded size, a bounded number in flight, zeros kept as holes.
#include <unistd.h>

#include "commands.h"
#include "stream.h"
#include "thin_copy.h"
#include "volume_access.h"

namespace rbdluks::cli {
namespace {

bool show_progress(const CommandLine& cl) { return !cl.has("quiet") && isatty(STDERR_FILENO); }

// --sparse-size: 0 for none; zero blocks must be whole sectors of the volume. Unless given, 4 KiB,
// except for an import that other readers would see holes of as noise: every byte is written into
// a file (cryptsetup decrypts its holes) and into LUKS1, the format of Cinder's volumes, which Nova
// reads through QEMU's own LUKS driver (it decrypts RBD holes too). LUKS2 on RBD has librbd's native
// encryption as its other reader, which reads holes as zeros.
Result<CopySettings> copy_settings(const CommandLine& cl, const UnlockedVolume& unlocked, bool into_image) {
  CopySettings settings{.progress = show_progress(cl), .label = into_image ? "import" : "export"};
  RL_ASSIGN(auto sparse, cl.get_size("sparse-size"));
  if (sparse) {
    settings.sparse_size = *sparse;
  } else if (into_image &&
             (!unlocked.loaded.image->peers_read_holes_as_zeros() || unlocked.loaded.volume->layout().version == 1)) {
    settings.sparse_size = 0;
  }
  settings.discard_unit = unlocked.loaded.image->discard_unit();
  settings.data_offset = unlocked.loaded.volume->layout().data_offset;
  const uint32_t sector = unlocked.loaded.volume->layout().sector_size;
  if (settings.sparse_size % sector != 0 || settings.sparse_size > (uint64_t{4} << 20)) {
    return Error(Errc::usage, "--sparse-size must be 0 or a multiple of the volume's sector size (" +
                                  std::to_string(sector) + ") up to 4M");
  }
  return settings;
}

}  // namespace

Status cmd_import(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 2, 2, "import SRC TARGET [--offset BYTES]"));
  RL_ASSIGN(auto offset, cl.get_size("offset"));
  RL_ASSIGN(auto in, Stream::open_input(args[0]));
  RL_ASSIGN(auto unlocked, unlock_volume(cl, args[1], OpenMode::read_write));
  RL_ASSIGN(const CopySettings settings, copy_settings(cl, unlocked, true));
  return import_plaintext(in, *unlocked.data, args[1], offset.value_or(0), std::nullopt, settings);
}

Status cmd_export(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 2, 2, "export TARGET DST"));
  RL_ASSIGN(auto unlocked, unlock_volume(cl, args[0], OpenMode::read_only));
  RL_ASSIGN(const uint64_t size, unlocked.data->size());
  RL_ASSIGN(const CopySettings settings, copy_settings(cl, unlocked, false));
  RL_ASSIGN(auto out, Stream::open_output(args[1]));
  return export_plaintext(*unlocked.data, 0, size, out, settings);
}

Status cmd_read(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "read TARGET --offset N --length L"));
  RL_ASSIGN(auto offset, cl.get_size("offset"));
  RL_ASSIGN(auto length, cl.get_size("length"));
  if (!offset || !length) return Error(Errc::usage, "read needs --offset N and --length L");
  RL_ASSIGN(auto unlocked, unlock_volume(cl, args[0], OpenMode::read_only));
  RL_ASSIGN(const uint64_t size, unlocked.data->size());
  RL_TRY(check_fits(args[0], *offset, *length, size));
  RL_ASSIGN(auto out, Stream::open_output("-"));
  return export_plaintext(*unlocked.data, *offset, *length, out, {.progress = show_progress(cl), .label = "read"});
}

Status cmd_write(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "write TARGET --offset N [--length L]"));
  RL_ASSIGN(auto offset, cl.get_size("offset"));
  RL_ASSIGN(auto length, cl.get_size("length"));
  if (!offset) return Error(Errc::usage, "write needs --offset N");
  RL_ASSIGN(auto unlocked, unlock_volume(cl, args[0], OpenMode::read_write));
  RL_ASSIGN(auto in, Stream::open_input("-"));
  // Every byte given is written, zeros too: `write` is the tool for putting exact bytes in place.
  return import_plaintext(in, *unlocked.data, args[0], *offset, length,
                          {.sparse_size = 0, .progress = show_progress(cl), .label = "write"});
}

Status cmd_resize(const CommandLine& cl, const Args& args) {
  RL_TRY(expect_args(args, 1, 1, "resize TARGET --size BYTES"));
  RL_ASSIGN(auto size, cl.get_size("size"));
  if (!size) return Error(Errc::usage, "resize needs --size BYTES (the new plaintext size)");
  RL_ASSIGN(auto loaded, load_volume_to_change(cl, args[0], "resize"));
  const VolumeLayout& layout = loaded.volume->layout();
  if (*size % layout.sector_size != 0) {
    return Error(Errc::usage,
                 "--size must be a multiple of the sector size (" + std::to_string(layout.sector_size) + ")");
  }
  if (layout.data_size) {
    return Error(Errc::unsupported,
                 args[0] + ": the data segment has a fixed size; only dynamic segments can be resized");
  }
  RL_TRY(loaded.image->resize(layout.data_offset + *size));
  RL_TRY(loaded.header_lock->release());
  inform(cl, "resized " + args[0] + " to " + std::to_string(*size) + " bytes of plaintext");
  return {};
}

}  // namespace rbdluks::cli
