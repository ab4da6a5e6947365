#!/usr/bin/python3
"""nbd_wire_checks.py: `rbd-luks nbd-server` byte by byte on the NBD wire, with a client written
here from the protocol description (doc/proto.md of github.com/NetworkBlockDevice/nbd), for what
libnbd-based clients never send: malformed options, requests past the end, unknown commands,
oversized writes, bad magic, requests pipelined without waiting, and a stop while requests are in
flight.

  nbd_wire_checks.py SOCKET SIZE writable|read-only   handshake, options and requests
  nbd_wire_checks.py SOCKET SIZE stop PID OUT          writes in flight, then SIGTERM to PID: every
      reply that comes has no error; OUT (JSON) records each write and whether it was answered
  nbd_wire_checks.py SOCKET SIZE check-stop OUT DUMP   after the server has gone, DUMP (the image's
      first bytes, read by rbd-luks) must hold every answered write, and no unanswered write may be
      in it either: a write the server applied is one it answered
  nbd_wire_checks.py SOCKET SIZE shrunk NEWSIZE        the image was shrunk to NEWSIZE under the
      server: requests across the new end fail instead of passing for whole
  nbd_wire_checks.py SOCKET SIZE connections N         N clients are served at once, the next refused
Exits non-zero with a message on the first difference.
"""
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

INIT_MAGIC, OPTION_MAGIC, OPTION_REPLY_MAGIC = 0x4E42444D41474943, 0x49484156454F5054, 0x3E889045565A9
REQUEST_MAGIC, SIMPLE_REPLY_MAGIC = 0x25609513, 0x67446698
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_INFO, OPT_GO, OPT_STRUCTURED_REPLY = 1, 2, 3, 6, 7, 8
OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT = 9, 10
REP_ACK, REP_SERVER, REP_INFO, REP_META_CONTEXT = 1, 2, 3, 4
REP_ERR_UNSUP, REP_ERR_INVALID, REP_ERR_TOO_BIG = 0x80000001, 0x80000003, 0x80000009
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_CACHE, CMD_WRITE_ZEROES, CMD_BLOCK_STATUS = range(8)
FLAG_FUA, FLAG_NO_HOLE, FLAG_REQ_ONE = 1, 2, 8
STRUCTURED_REPLY_MAGIC, REPLY_FLAG_DONE = 0x668E33EF, 1
CHUNK_NONE, CHUNK_OFFSET_DATA, CHUNK_BLOCK_STATUS, CHUNK_ERROR = 0, 1, 5, 0x8001
HAS_FLAGS, READ_ONLY, SEND_FLUSH, SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES, CAN_MULTI_CONN = 1, 2, 4, 8, 32, 64, 256
EPERM, EINVAL, ENOSPC = 1, 22, 28
MiB = 1 << 20


def check(condition, what):
    if not condition:
        sys.exit(f"nbd_wire_checks: {what}")


class Client:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.s.settimeout(60)

    def recv(self, n):
        data = b""
        while len(data) < n:
            chunk = self.s.recv(n - len(data))
            if not chunk:
                raise EOFError(f"connection closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    def closed(self, seconds=20):
        """True when the server closes the connection (after any bytes it still sends) in time."""
        self.s.settimeout(seconds)
        try:
            while self.s.recv(65536):
                pass
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def greet(self, client_flags=3):
        init, opt, flags = struct.unpack(">QQH", self.recv(18))
        check(init == INIT_MAGIC and opt == OPTION_MAGIC, "bad greeting magic")
        check(flags == 3, f"handshake flags {flags}, expected fixed newstyle and no zeroes")
        self.s.sendall(struct.pack(">I", client_flags))

    def option(self, option, data=b""):
        self.s.sendall(struct.pack(">QII", OPTION_MAGIC, option, len(data)) + data)

    def option_reply(self, option):
        magic, echoed, kind, length = struct.unpack(">QIII", self.recv(20))
        check(magic == OPTION_REPLY_MAGIC, f"bad option reply magic {magic:#x}")
        check(echoed == option, f"option reply for {echoed}, sent {option}")
        return kind, self.recv(length)

    def go(self, size, info_requests=()):
        body = struct.pack(">I", 0) + struct.pack(">H", len(info_requests))
        body += b"".join(struct.pack(">H", i) for i in info_requests)
        self.option(OPT_GO, body)
        infos = {}
        while True:
            kind, data = self.option_reply(OPT_GO)
            if kind == REP_ACK:
                break
            check(kind == REP_INFO, f"GO reply type {kind:#x}")
            infos[struct.unpack(">H", data[:2])[0]] = data
        export = infos.get(0)
        check(export is not None and len(export) == 12, "GO without NBD_INFO_EXPORT")
        got_size, flags = struct.unpack(">QH", export[2:])
        check(got_size == size, f"export size {got_size}, expected {size}")
        return flags, infos

    def send(self, command, cookie, offset=0, length=0, flags=0, payload=b""):
        self.s.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, flags, command, cookie, offset, length) + payload)

    def reply(self):
        magic, error, cookie = struct.unpack(">IIQ", self.recv(16))
        check(magic == SIMPLE_REPLY_MAGIC, f"bad reply magic {magic:#x}")
        return cookie, error

    def request(self, command, offset=0, length=0, flags=0, payload=b""):
        self.send(command, 7, offset, length, flags, payload)
        cookie, error = self.reply()
        check(cookie == 7, f"reply cookie {cookie}")
        data = self.recv(length) if command == CMD_READ and error == 0 else b""
        return error, data


def handshake_checks(path, size, read_only):
    c = Client(path)
    c.greet()
    c.option(0x7FFF)
    check(c.option_reply(0x7FFF) == (REP_ERR_UNSUP, b""), "an unknown option is not refused as unsupported")
    c.option(0x7FFF, b"x" * 5000)
    check(c.option_reply(0x7FFF) == (REP_ERR_TOO_BIG, b""), "an option over 4096 bytes is not refused as too big")
    c.option(OPT_LIST, b"x")
    check(c.option_reply(OPT_LIST)[0] == REP_ERR_INVALID, "LIST with data is not refused as invalid")
    c.option(OPT_LIST)
    check(c.option_reply(OPT_LIST) == (REP_SERVER, struct.pack(">I", 0)), "LIST: not one export named ''")
    check(c.option_reply(OPT_LIST)[0] == REP_ACK, "LIST: no ACK")
    c.option(OPT_INFO, b"\0\0")  # shorter than its own name length field
    check(c.option_reply(OPT_INFO)[0] == REP_ERR_INVALID, "malformed INFO not refused as invalid")
    flags, infos = c.go(size, info_requests=(3,))
    check(struct.unpack(">HIII", infos.get(3, b"\0" * 14)) == (3, 1, 4096, 32 * MiB), "block sizes")
    expected = HAS_FLAGS | SEND_FLUSH | SEND_FUA | CAN_MULTI_CONN
    expected |= READ_ONLY if read_only else SEND_TRIM | SEND_WRITE_ZEROES
    check(flags == expected, f"transmission flags {flags:#x}, expected {expected:#x}")
    return c


def request_checks(path, size):
    c = handshake_checks(path, size, read_only=False)
    check(c.request(CMD_WRITE, size - 3, 5, payload=b"x" * 5)[0] == ENOSPC, "write past the end")
    check(c.request(CMD_WRITE_ZEROES, size - 3, 5)[0] == ENOSPC, "write-zeroes past the end")
    check(c.request(CMD_READ, size - 1, 2)[0] == EINVAL, "read past the end")
    check(c.request(CMD_TRIM, size, 1)[0] == EINVAL, "trim past the end")
    check(c.request(CMD_READ, 0, 32 * MiB + 1)[0] == EINVAL, "read longer than the maximum block size")
    check(c.request(CMD_CACHE, 0, 4096)[0] == EINVAL, "unknown command")
    check(c.request(CMD_WRITE, 0, 4, FLAG_NO_HOLE, b"abcd")[0] == EINVAL, "NO_HOLE on a write")
    check(c.request(CMD_READ, 0, 4096, FLAG_REQ_ONE)[0] == EINVAL, "REQ_ONE on a read")
    check(c.request(CMD_READ, 0, 4096, 0x40)[0] == EINVAL, "an unknown flag")

    # Unaligned writes with FUA, write-zeroes with and without holes, read back byte for byte.
    data = os.urandom(10000)
    check(c.request(CMD_WRITE, 1000, len(data), FLAG_FUA, data) == (0, b""), "FUA write")
    check(c.request(CMD_READ, 1000, len(data)) == (0, data), "unaligned write read back")
    check(c.request(CMD_WRITE_ZEROES, 3000, 5000, FLAG_NO_HOLE | FLAG_FUA)[0] == 0, "write-zeroes, no hole")
    check(c.request(CMD_WRITE_ZEROES, 9000, 100)[0] == 0, "write-zeroes")
    expected = data[:2000] + bytes(5000) + data[7000:8000] + bytes(100) + data[8100:]
    check(c.request(CMD_READ, 1000, len(data)) == (0, expected), "zeros read back")
    check(c.request(CMD_TRIM, 4 * MiB, 4 * MiB, FLAG_FUA)[0] == 0, "trim")
    check(c.request(CMD_READ, 4 * MiB, 4 * MiB) == (0, bytes(4 * MiB)), "trimmed range reads as zeros")

    # 64 writes then 64 reads of the same blocks, all sent before any reply is read: every reply
    # matches its cookie, and each read sees its block's write (a read sent after a write that the
    # server has not answered yet may see either, so the reads go after all write replies).
    blocks = {i: os.urandom(4096) for i in range(64)}
    for i, block in blocks.items():
        c.send(CMD_WRITE, 1000 + i, 8 * MiB + i * 4096 * 3, 4096, payload=block)
    cookies = {c.reply() for _ in blocks}
    check(cookies == {(1000 + i, 0) for i in blocks}, "pipelined writes: replies")
    for i in blocks:
        c.send(CMD_READ, 2000 + i, 8 * MiB + i * 4096 * 3, 4096)
    for _ in blocks:
        cookie, error = c.reply()
        check(error == 0 and 2000 <= cookie < 2064, f"pipelined read: cookie {cookie} error {error}")
        check(c.recv(4096) == blocks[cookie - 2000], f"pipelined read {cookie - 2000}: other bytes")
    check(c.request(CMD_FLUSH)[0] == 0, "flush")
    c.send(CMD_DISC, 0)
    check(c.closed(), "the server did not close the connection after NBD_CMD_DISC")

    # Old-style NBD_OPT_EXPORT_NAME: size and flags, and 124 zero bytes unless the client said
    # NO_ZEROES.
    for client_flags, padding in ((3, 0), (1, 124)):
        c = Client(path)
        c.greet(client_flags)
        c.option(OPT_EXPORT_NAME, b"any name")
        got_size, flags = struct.unpack(">QH", c.recv(10))
        check(got_size == size and flags & SEND_TRIM, "EXPORT_NAME reply")
        check(c.recv(padding) == bytes(padding), "EXPORT_NAME padding")
        check(c.request(CMD_READ, 1000, 16) == (0, expected[:16]), "read after EXPORT_NAME")

    # A client that is not fixed newstyle, or sends unknown flags, is hung up on.
    for client_flags in (0, 3 | 4):
        c = Client(path)
        c.greet(client_flags)
        check(c.closed(), f"client flags {client_flags} were accepted")

    # What ends a connection: ABORT, a write longer than the maximum, a bad request magic.
    c = Client(path)
    c.greet()
    c.option(OPT_ABORT)
    check(c.option_reply(OPT_ABORT)[0] == REP_ACK and c.closed(), "ABORT")
    c = handshake_checks(path, size, read_only=False)
    c.send(CMD_WRITE, 1, 0, 32 * MiB + 1)
    check(c.closed(), "a write longer than the maximum block size did not end the connection")
    c = handshake_checks(path, size, read_only=False)
    c.s.sendall(b"\0" * 28)
    check(c.closed(), "a bad request magic did not end the connection")

    # A client that does not read its replies holds up neither the image nor other clients: 192 MiB
    # of reads, more than the socket and the in-flight budget take, go unread while a second
    # connection is served; then every reply arrives intact.
    stalled = handshake_checks(path, size, read_only=False)
    count = 48
    for i in range(count):
        stalled.send(CMD_READ, 5000 + i, (i % 8) * 4 * MiB, 4 * MiB)
    other = handshake_checks(path, size, read_only=False)
    other.s.settimeout(20)
    check(other.request(CMD_READ, 1000, 16) == (0, expected[:16]), "a second client while another stalls")
    for _ in range(count):
        cookie, error = stalled.reply()
        check(error == 0 and 5000 <= cookie < 5000 + count, f"stalled client: cookie {cookie} error {error}")
        got = stalled.recv(4 * MiB)
        if (cookie - 5000) % 8 == 0:
            check(got[1000:1000 + len(expected)] == expected, "stalled client: other bytes")


def meta_query(*queries):
    body = struct.pack(">I", 0) + struct.pack(">I", len(queries))
    return body + b"".join(struct.pack(">I", len(q)) + q for q in queries)


def structured_checks(path, size):
    """Structured replies and the base:allocation meta context (NBD_CMD_BLOCK_STATUS)."""
    c = Client(path)
    c.greet()
    c.option(OPT_SET_META_CONTEXT, meta_query(b"base:allocation"))
    check(c.option_reply(OPT_SET_META_CONTEXT)[0] == REP_ERR_INVALID, "SET_META_CONTEXT before structured replies")
    c.option(OPT_STRUCTURED_REPLY, b"x")
    check(c.option_reply(OPT_STRUCTURED_REPLY)[0] == REP_ERR_INVALID, "STRUCTURED_REPLY with data")
    c.option(OPT_STRUCTURED_REPLY)
    check(c.option_reply(OPT_STRUCTURED_REPLY) == (REP_ACK, b""), "STRUCTURED_REPLY")
    c.option(OPT_LIST_META_CONTEXT, meta_query())
    check(c.option_reply(OPT_LIST_META_CONTEXT) == (REP_META_CONTEXT, struct.pack(">I", 0) + b"base:allocation"),
          "LIST_META_CONTEXT")
    check(c.option_reply(OPT_LIST_META_CONTEXT)[0] == REP_ACK, "LIST_META_CONTEXT: no ACK")
    c.option(OPT_SET_META_CONTEXT, meta_query(b"qemu:dirty-bitmap:x", b"base:allocation"))
    check(c.option_reply(OPT_SET_META_CONTEXT) == (REP_META_CONTEXT, struct.pack(">I", 1) + b"base:allocation"),
          "SET_META_CONTEXT")
    check(c.option_reply(OPT_SET_META_CONTEXT)[0] == REP_ACK, "SET_META_CONTEXT: no ACK")
    c.go(size)

    def chunk(cookie):
        magic, flags, kind, got_cookie, length = struct.unpack(">IHHQI", c.recv(20))
        check(magic == STRUCTURED_REPLY_MAGIC and flags == REPLY_FLAG_DONE, f"chunk magic {magic:#x} flags {flags}")
        check(got_cookie == cookie, f"chunk cookie {got_cookie}, sent {cookie}")
        return kind, c.recv(length)

    data = os.urandom(5000)
    c.send(CMD_WRITE, 1, 12345, len(data), payload=data)
    check(chunk(1) == (CHUNK_NONE, b""), "write: not one NONE chunk")
    c.send(CMD_READ, 2, 12345, len(data))
    check(chunk(2) == (CHUNK_OFFSET_DATA, struct.pack(">Q", 12345) + data), "read: not one OFFSET_DATA chunk")
    c.send(CMD_READ, 3, size - 1, 2)
    check(chunk(3) == (CHUNK_ERROR, struct.pack(">IH", EINVAL, 0)), "read past the end: not an ERROR chunk")

    def extents(cookie, offset, length, flags=0):
        c.send(CMD_BLOCK_STATUS, cookie, offset, length, flags)
        kind, payload = chunk(cookie)
        check(kind == CHUNK_BLOCK_STATUS and struct.unpack(">I", payload[:4])[0] == 1, "block status chunk")
        return [struct.unpack(">II", payload[i:i + 8]) for i in range(4, len(payload), 8)]

    whole = extents(4, 0, size)
    check(sum(n for n, _ in whole) == size and all(state in (0, 3) for _, state in whole), f"extents {whole}")
    check(extents(5, 0, 4096) == [(4096, 0)], "the written first block is not data")
    c.send(CMD_TRIM, 9, 40 * MiB, 8 * MiB)
    check(chunk(9) == (CHUNK_NONE, b""), "trim for a hole")
    check(extents(6, 40 * MiB, 8 * MiB) == [(8 * MiB, 3)], "a trimmed range is not a hole that reads as zeros")
    check(len(extents(7, 0, size, FLAG_REQ_ONE)) == 1, "REQ_ONE: more than one extent")
    c.send(CMD_BLOCK_STATUS, 8, size, 1)
    check(chunk(8)[0] == CHUNK_ERROR, "block status past the end")
    c.send(CMD_DISC, 0)
    check(c.closed(), "no close after NBD_CMD_DISC")


def read_only_checks(path, size):
    c = handshake_checks(path, size, read_only=True)
    check(c.request(CMD_WRITE, 0, 4, payload=b"abcd")[0] == EPERM, "write to a read-only export")
    check(c.request(CMD_WRITE_ZEROES, 0, 4096)[0] == EPERM, "write-zeroes to a read-only export")
    check(c.request(CMD_TRIM, 0, 4096)[0] == EPERM, "trim on a read-only export")
    check(c.request(CMD_READ, 0, 4096)[0] == 0, "read from a read-only export")
    check(c.request(CMD_FLUSH)[0] == 0, "flush on a read-only export")


def stop_checks(path, size, pid, out):
    c = handshake_checks(path, size, read_only=False)
    block = 64 << 10
    # The range starts as zeros, so that afterwards a write shows whether the server applied it.
    check(c.request(CMD_TRIM, 0, 256 * block, FLAG_FUA)[0] == 0, "trim before the stop")
    writes = {i: bytes([i % 251 + 1]) * block for i in range(256)}

    def send_writes():
        try:
            for i, data in writes.items():
                c.send(CMD_WRITE, i, i * block, block, payload=data)
        except OSError:
            pass  # the server stopped reading requests: those not sent yet are not answered

    sender = threading.Thread(target=send_writes)
    sender.start()
    cookie, error = c.reply()
    check(error == 0, f"write {cookie} failed with {error}")
    answered = {cookie}
    os.kill(pid, signal.SIGTERM)
    try:
        while True:
            cookie, error = c.reply()
            check(error == 0, f"write {cookie} failed with {error} during the stop")
            answered.add(cookie)
    except (EOFError, ConnectionResetError):  # a reset: the server left requests it had not read
        pass
    sender.join()
    with open(out, "w") as f:
        json.dump({"block": block, "answered": sorted(answered), "count": len(writes)}, f)
    print(f"{len(answered)} of {len(writes)} writes answered before the stop")


def check_stop(out, dump):
    record = json.load(open(out))
    block, answered = record["block"], set(record["answered"])
    data = open(dump, "rb").read()
    for i in range(record["count"]):
        got = data[i * block:(i + 1) * block]
        if i in answered:
            check(got == bytes([i % 251 + 1]) * block, f"write {i} was answered but is not in the image")
        else:
            check(got == bytes(block), f"write {i} is in the image (or torn) but was never answered")


def shrunk_checks(path, size, new_size):
    c = handshake_checks(path, size, read_only=False)
    check(c.request(CMD_READ, new_size - 4096, 8192)[0] == EINVAL, "a read across the new end passed for whole")
    check(c.request(CMD_WRITE, new_size - 4096, 8192, payload=bytes(8192))[0] == ENOSPC,
          "a write across the new end passed for whole")
    check(c.request(CMD_WRITE_ZEROES, new_size - 4096, 8192, FLAG_NO_HOLE)[0] == ENOSPC,
          "write-zeroes across the new end passed for whole")
    check(c.request(CMD_READ, new_size - 4096, 4096)[0] == 0, "a read before the new end")


def connection_checks(path, size, count):
    clients = []
    for _ in range(200):  # the threads of clients that just left may still be finishing
        try:
            while len(clients) < count:
                clients.append(handshake_checks(path, size, read_only=False))
            break
        except (EOFError, ConnectionResetError):
            time.sleep(0.1)
    check(len(clients) == count, f"only {len(clients)} clients were served at once")
    refused = Client(path)
    check(refused.closed(), f"client {count + 1} was served beside {count} others")
    for c in clients:
        check(c.request(CMD_READ, 0, 4096)[0] == 0, "a read on one of the clients")


def main():
    path, size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "writable":
        request_checks(path, size)
        structured_checks(path, size)
    elif mode == "read-only":
        read_only_checks(path, size)
    elif mode == "stop":
        stop_checks(path, size, int(sys.argv[4]), sys.argv[5])
    elif mode == "check-stop":
        check_stop(sys.argv[4], sys.argv[5])
    elif mode == "shrunk":
        shrunk_checks(path, size, int(sys.argv[4]))
    else:
        connection_checks(path, size, int(sys.argv[4]))


if __name__ == "__main__":
    main()
