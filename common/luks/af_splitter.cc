// The LUKS anti-forensic splitter, byte for byte as cryptsetup's lib/luks1/af.c (AF_split, AF_merge).
#include "af_splitter.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "hash.h"
#include "random.h"
#include "secure_buffer.h"

namespace rbdluks {
namespace {

void xor_into(std::span<uint8_t> dst, std::span<const uint8_t> src) {
  for (size_t i = 0; i < dst.size(); ++i) dst[i] ^= src[i];
}

// Replaces each digest-sized chunk i of block with H(be32(i) || chunk); a shorter last chunk gets the
// same treatment with the digest truncated to its length.
Status diffuse(std::span<uint8_t> block, std::string_view hash, std::span<uint8_t> digest) {
  const size_t digest_size = digest.size();
  for (size_t start = 0, i = 0; start < block.size(); start += digest_size, ++i) {
    const std::span<uint8_t> chunk = block.subspan(start, std::min(digest_size, block.size() - start));
    const uint8_t index[4] = {static_cast<uint8_t>(i >> 24), static_cast<uint8_t>(i >> 16),
                              static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    const std::span<const uint8_t> parts[] = {index, chunk};
    RL_TRY(hash_parts(hash, parts, digest));
    std::memcpy(chunk.data(), digest.data(), chunk.size());
  }
  return {};
}

Status check_sizes(const char* what, size_t key_size, uint32_t stripes, size_t split_size) {
  if (key_size == 0 || stripes == 0) return Error(Errc::failure, std::string(what) + ": key size or stripes is 0");
  if (split_size != af_split_size(key_size, stripes)) {
    return Error(Errc::failure, std::string(what) + ": split area has " + std::to_string(split_size) +
                                    " bytes, expected " + std::to_string(key_size) + " * " + std::to_string(stripes));
  }
  return {};
}

}  // namespace

Status af_split(std::span<const uint8_t> key, uint32_t stripes, std::string_view hash, std::span<uint8_t> out) {
  RL_TRY(check_sizes("af_split", key.size(), stripes, out.size()));
  RL_ASSIGN(const size_t digest_size, hash_size(hash));
  const size_t block_size = key.size();
  SecureBuffer acc(block_size);
  SecureBuffer digest(digest_size);
  for (uint32_t i = 0; i + 1 < stripes; ++i) {
    const std::span<uint8_t> stripe = out.subspan(i * block_size, block_size);
    RL_TRY(fill_random(stripe));
    xor_into(acc.span(), stripe);
    RL_TRY(diffuse(acc.span(), hash, digest.span()));
  }
  const std::span<uint8_t> last = out.subspan((stripes - 1) * block_size, block_size);
  std::memcpy(last.data(), key.data(), block_size);
  xor_into(last, acc.span());
  return {};
}

Status af_merge(std::span<const uint8_t> split, uint32_t stripes, std::string_view hash, std::span<uint8_t> key) {
  RL_TRY(check_sizes("af_merge", key.size(), stripes, split.size()));
  RL_ASSIGN(const size_t digest_size, hash_size(hash));
  const size_t block_size = key.size();
  SecureBuffer acc(block_size);
  SecureBuffer digest(digest_size);
  for (uint32_t i = 0; i + 1 < stripes; ++i) {
    xor_into(acc.span(), split.subspan(i * block_size, block_size));
    RL_TRY(diffuse(acc.span(), hash, digest.span()));
  }
  const std::span<const uint8_t> last = split.subspan((stripes - 1) * block_size, block_size);
  std::memcpy(key.data(), last.data(), block_size);
  xor_into(key, acc.span());
  return {};
}

}  // namespace rbdluks
