// The parts of the NBD wire protocol that rbd-luks's NBD server speaks: the fixed newstyle handshake
// with NBD_OPT_GO, INFO, EXPORT_NAME, LIST and ABORT, and the transmission phase with simple replies.
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

enum class Option : uint32_t { export_name = 1, abort = 2, list = 3, info = 6, go = 7 };
enum class OptionReply : uint32_t {
  ack = 1,
  server = 2,
  info = 3,
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
constexpr size_t kRequestBytes = 28;
constexpr size_t kSimpleReplyBytes = 16;

enum class Command : uint16_t { read = 0, write = 1, disconnect = 2, flush = 3, trim = 4, write_zeroes = 6 };
constexpr uint16_t kCommandFua = 1 << 0;
constexpr uint16_t kCommandNoHole = 1 << 1;

struct Request {
  uint32_t magic;
  uint16_t flags;
  uint16_t type;
  uint64_t cookie;  // the client's handle, echoed in the reply
  uint64_t offset;
  uint32_t length;
};

Request decode_request(const std::array<uint8_t, kRequestBytes>& raw);
std::array<uint8_t, kSimpleReplyBytes> encode_simple_reply(uint64_t cookie, uint32_t error);

// The protocol's error numbers are Linux's for EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW,
// ENOTSUP and ESHUTDOWN; anything else is sent as EIO, and EROFS as EPERM. result <= 0.
uint32_t error_on_wire(long result);

}  // namespace rbdluks::nbd
