// Format options from the command line.
#include "format_options.h"

#include "cipher_spec.h"
#include "volume_access.h"

namespace rbdluks::cli {

Result<FormatOptions> format_options_from(const CommandLine& cl) {
  FormatOptions options;
  const std::string type = cl.get("type").value_or("luks2");
  if (type == "luks2")
    options.version = 2;
  else if (type == "luks1")
    options.version = 1;
  else
    return Error(Errc::usage, "--type must be luks2 or luks1, not '" + type + "'");

  options.cipher = cl.get("cipher").value_or("aes-xts-plain64");
  RL_ASSIGN(auto key_bits, cl.get_uint("key-size"));
  if (key_bits && *key_bits != 256 && *key_bits != 512) return Error(Errc::usage, "--key-size must be 256 or 512");
  options.key_bytes = static_cast<uint32_t>(key_bits.value_or(512) / 8);
  if (auto status = check_cipher_key_size(options.cipher, options.key_bytes); !status) {
    return Error(Errc::usage, status.error().message());
  }

  RL_ASSIGN(auto sector, cl.get_uint("sector-size"));
  if (options.version == 1) {
    if (sector && *sector != 512) return Error(Errc::usage, "--sector-size: LUKS1 supports only 512-byte sectors");
    options.sector_size = 512;
  } else {
    options.sector_size = static_cast<uint32_t>(sector.value_or(4096));
    if (options.sector_size != 512 && options.sector_size != 1024 && options.sector_size != 2048 &&
        options.sector_size != 4096) {
      return Error(Errc::usage, "--sector-size must be 512, 1024, 2048 or 4096");
    }
  }
  RL_ASSIGN(options.data_offset, cl.get_size("data-offset"));
  RL_ASSIGN(options.kdf, kdf_request_from(cl, options.version));
  options.uuid = cl.get("uuid");
  return options;
}

}  // namespace rbdluks::cli
