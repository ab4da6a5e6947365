// Encoding and decoding of NBD's fixed-size transmission messages (nbd_protocol.h).
#include "nbd_protocol.h"

#include <cerrno>
#include <span>

#include "byte_fields.h"

namespace rbdluks::nbd {

Request decode_request(const std::array<uint8_t, kRequestBytes>& raw) {
  const std::span<const uint8_t> bytes(raw);
  return Request{static_cast<uint32_t>(load_be(bytes, 0, 4)),
                 static_cast<uint16_t>(load_be(bytes, 4, 2)),
                 static_cast<uint16_t>(load_be(bytes, 6, 2)),
                 load_be(bytes, 8, 8),
                 load_be(bytes, 16, 8),
                 static_cast<uint32_t>(load_be(bytes, 24, 4))};
}

std::array<uint8_t, kSimpleReplyBytes> encode_simple_reply(uint64_t cookie, uint32_t error) {
  std::array<uint8_t, kSimpleReplyBytes> raw{};
  store_be(raw, 0, 4, kSimpleReplyMagic);
  store_be(raw, 4, 4, error);
  store_be(raw, 8, 8, cookie);
  return raw;
}

uint32_t error_on_wire(long result) {
  switch (-result) {
    case 0:
    case EPERM:
    case EIO:
    case ENOMEM:
    case EINVAL:
    case ENOSPC:
    case EOVERFLOW:
    case ENOTSUP:
    case ESHUTDOWN:
      return static_cast<uint32_t>(-result);
    case EROFS:
      return EPERM;
    default:
      return EIO;
  }
}

}  // namespace rbdluks::nbd
