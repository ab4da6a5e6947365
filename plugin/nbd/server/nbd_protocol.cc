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

ReplyHead simple_reply(uint64_t cookie, uint32_t error) {
  ReplyHead head;
  store_be(head.bytes, 0, 4, kSimpleReplyMagic);
  store_be(head.bytes, 4, 4, error);
  store_be(head.bytes, 8, 8, cookie);
  head.size = 16;
  return head;
}

ReplyHead structured_reply(uint64_t cookie, uint32_t error, Command command, uint64_t offset, uint32_t payload_bytes) {
  enum Type : uint16_t { none = 0, offset_data = 1, block_status = 5, error_chunk = (1 << 15) + 1 };
  constexpr uint16_t kDone = 1;
  ReplyHead head;
  const std::span<uint8_t> bytes(head.bytes);
  // Magic, flags, type, cookie, length of what follows these 20 bytes.
  auto chunk = [&](Type type, uint32_t length) {
    store_be(bytes, 0, 4, kStructuredReplyMagic);
    store_be(bytes, 4, 2, kDone);
    store_be(bytes, 6, 2, type);
    store_be(bytes, 8, 8, cookie);
    store_be(bytes, 16, 4, length);
  };
  if (error != 0) {
    chunk(error_chunk, 6);
    store_be(bytes, 20, 4, error);
    store_be(bytes, 24, 2, 0);  // no message
    head.size = 26;
  } else if (command == Command::read) {
    chunk(offset_data, 8 + payload_bytes);
    store_be(bytes, 20, 8, offset);
    head.size = 28;
  } else if (command == Command::block_status) {
    chunk(block_status, 4 + payload_bytes);
    store_be(bytes, 20, 4, kAllocationContextId);
    head.size = 24;
  } else {
    chunk(none, 0);
    head.size = 20;
  }
  return head;
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
      return static_cast<uint32_t>(-result);
    case EROFS:
      return EPERM;
    case EDQUOT:
    case EFBIG:
      return ENOSPC;
    default:  // ESHUTDOWN among them: Ceph's "blocklisted" is not the server shutting down
      return EIO;
  }
}

}  // namespace rbdluks::nbd
