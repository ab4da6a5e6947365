// The parts of the NBD wire protocol that rbd-luks's NBD server speaks: the fixed newstyle handshake
// with NBD_OPT_GO, INFO, EXPORT_NAME, LIST, ABORT, STRUCTURED_REPLY and the meta context options for
// "base:allocation", and the transmission phase with simple replies, or structured replies of one
// chunk each.
// Numbers and layouts are from the protocol description, doc/proto.md in
// https://github.com/NetworkBlockDevice/nbd; every integer on the wire is big-endian.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace rbdluks::nbd {

// Handshake.
constexpr uint64_t kInitMagic = 0x4e42444d41474943;    // "NBDMAGIC"
constexpr uint64_t kOptionMagic = 0x49484156454f5054;  // "IHAVEOPT"
constexpr uint64_t kOptionReplyMagic = 0x0003e889045565a9;
constexpr uint16_t kHandshakeFixedNewstyle = 1 << 0;
constexpr uint16_t kHandshakeNoZeroes = 1 << 1;
constexpr uint32_t kClientFixedNewstyle = 1 << 0;
constexpr uint32_t kClientNoZeroes = 1 << 1;

enum class Option : uint32_t {
  export_name = 1,
  abort = 2,
  list = 3,
  info = 6,
  go = 7,
  structured_reply = 8,
  list_meta_context = 9,
  set_meta_context = 10,
};
enum class OptionReply : uint32_t {
  ack = 1,
  server = 2,
  info = 3,
  meta_context = 4,
  error_unsupported = 0x80000001,
  error_invalid = 0x80000003,
  error_too_big = 0x80000009,
};
constexpr uint16_t kInfoExport = 0;
constexpr uint16_t kInfoBlockSize = 3;
// Options longer than this are refused without being read into memory.
constexpr uint32_t kMaxOptionBytes = 4096;

// Transmission flags, sent with the export's size.
constexpr uint16_t kHasFlags = 1 << 0;
constexpr uint16_t kReadOnly = 1 << 1;
constexpr uint16_t kSendFlush = 1 << 2;
constexpr uint16_t kSendFua = 1 << 3;
constexpr uint16_t kSendTrim = 1 << 5;
constexpr uint16_t kSendWriteZeroes = 1 << 6;
constexpr uint16_t kCanMultiConn = 1 << 8;

// Transmission.
constexpr uint32_t kRequestMagic = 0x25609513;
constexpr uint32_t kSimpleReplyMagic = 0x67446698;
constexpr uint32_t kStructuredReplyMagic = 0x668e33ef;
constexpr size_t kRequestBytes = 28;

enum class Command : uint16_t {
  read = 0,
  write = 1,
  disconnect = 2,
  flush = 3,
  trim = 4,
  write_zeroes = 6,
  block_status = 7,
};
constexpr uint16_t kCommandFua = 1 << 0;
constexpr uint16_t kCommandNoHole = 1 << 1;
constexpr uint16_t kCommandReqOne = 1 << 3;  // block status: one extent is enough

// The one meta context served: which parts of the export hold data (NBD_CMD_BLOCK_STATUS).
constexpr const char* kAllocationContext = "base:allocation";
constexpr uint32_t kAllocationContextId = 1;
constexpr uint32_t kStateHole = 1 << 0;
constexpr uint32_t kStateZero = 1 << 1;

struct Request {
  uint32_t magic;
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;  // the client's handle, echoed in the reply
  uint64_t offset;
  uint32_t length;
};

Request decode_request(const std::array<uint8_t, kRequestBytes>& raw);

// What goes on the wire before a reply's payload (a read's data, a block status's descriptors).
struct ReplyHead {
  std::array<uint8_t, 32> bytes{};
  size_t size = 0;
};
ReplyHead simple_reply(uint64_t cookie, uint32_t error);
// A structured reply of one chunk, flagged as the last: ERROR when error is set, else OFFSET_DATA for
// a read (at offset), BLOCK_STATUS for a block status (kAllocationContextId), NONE for the rest.
ReplyHead structured_reply(uint64_t cookie, uint32_t error, Command command, uint64_t offset, uint32_t payload_bytes);

// The protocol's error numbers are Linux's for EPERM, EIO, ENOMEM, EINVAL, ENOSPC and EOVERFLOW;
// EROFS is sent as EPERM, EDQUOT and EFBIG as ENOSPC, anything else as EIO. result <= 0.
uint32_t error_on_wire(long result);

}  // namespace rbdluks::nbd
