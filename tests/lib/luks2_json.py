#!/usr/bin/python3
"""Edits the JSON metadata of a LUKS2 header in an image file the way an unusual or hostile writer
would, then seals both header copies again (checksum recomputed, JSON area padded with NULs), so
rbd-luks and cryptsetup read exactly the edited header. For tests only.

    luks2_json.py IMAGE                  print the JSON metadata of the primary copy
    luks2_json.py IMAGE 'STATEMENTS'     run STATEMENTS with `j` bound to the parsed JSON, write it back

Example: luks2_json.py img 'j["segments"]["0"]["iv_tweak"] = "8"'
"""
import hashlib
import json
import struct
import sys

BINARY_HEADER = 4096
CSUM_OFFSET, CSUM_LENGTH = 448, 64  # after magic .. hdr_offset and 184 bytes of padding


def read_json(image, offset, hdr_size):
    image.seek(offset + BINARY_HEADER)
    area = image.read(hdr_size - BINARY_HEADER)
    return json.loads(area[:area.index(b"\0")].decode())


def seal(image, offset, hdr_size, text):
    area = text.encode()
    if len(area) >= hdr_size - BINARY_HEADER:
        sys.exit("luks2_json: the edited JSON does not fit the JSON area")
    area += b"\0" * (hdr_size - BINARY_HEADER - len(area))
    image.seek(offset)
    binary = bytearray(image.read(BINARY_HEADER))
    binary[CSUM_OFFSET:CSUM_OFFSET + CSUM_LENGTH] = bytes(CSUM_LENGTH)
    digest = hashlib.sha256(bytes(binary) + area).digest()
    binary[CSUM_OFFSET:CSUM_OFFSET + len(digest)] = digest
    image.seek(offset)
    image.write(bytes(binary) + area)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    with open(sys.argv[1], "r+b") as image:
        if image.read(6) != b"LUKS\xba\xbe":
            sys.exit("luks2_json: no LUKS header at offset 0")
        image.seek(8)
        (hdr_size,) = struct.unpack(">Q", image.read(8))
        j = read_json(image, 0, hdr_size)
        if len(sys.argv) == 2:
            print(json.dumps(j, indent=2))
            return
        exec(sys.argv[2], {"j": j})  # pylint: disable=exec-used
        text = json.dumps(j, separators=(",", ":"))
        for offset in (0, hdr_size):
            seal(image, offset, hdr_size, text)


if __name__ == "__main__":
    main()
