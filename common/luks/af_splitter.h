// The anti-forensic information splitter of LUKS (TKS1): a key is stretched into `stripes` blocks
// so that destroying any one block destroys the key. Diffusion hashes each digest-sized chunk with
// H(be32(index) || chunk), exactly as cryptsetup's lib/luks1/af.c does.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "result.h"

namespace rbdluks {

inline size_t af_split_size(size_t key_size, uint32_t stripes) { return key_size * stripes; }

// out.size() must be af_split_size(key.size(), stripes). Uses random bytes for all but the last stripe.
Status af_split(std::span<const uint8_t> key, uint32_t stripes, std::string_view hash, std::span<uint8_t> out);

// split.size() must be af_split_size(key.size(), stripes); key receives the merged key.
Status af_merge(std::span<const uint8_t> split, uint32_t stripes, std::string_view hash, std::span<uint8_t> key);

}  // namespace rbdluks
