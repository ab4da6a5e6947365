#!/usr/bin/python3
"""The data of a LUKS image file through Python's `cryptography`, independent of the code under test.

  xts_image.py plaintext IMAGE KEY_HEX DATA_OFFSET SECTOR_SIZE OUT
      decrypts every sector of the data (from DATA_OFFSET to the end) into OUT; all-zero
      ciphertext sectors become zeros, as rbd-luks and librbd read them
  xts_image.py unchanged IMAGE_A IMAGE_B DATA_OFFSET SECTOR_SIZE
      prints how many data sectors that are not all zeros hold the same ciphertext in both images
"""
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CHUNK = 1 << 20


def sectors(path, offset, sector):
    with open(path, "rb") as f:
        f.seek(offset)
        position = 0
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                return
            for i in range(0, len(chunk) - len(chunk) % sector, sector):
                yield position + i, chunk[i : i + sector]
            position += len(chunk)


def plaintext(image, key_hex, data_offset, sector, out_path):
    key = bytes.fromhex(key_hex)
    zero = bytes(sector)
    with open(out_path, "wb") as out:
        for position, ct in sectors(image, data_offset, sector):
            if ct == zero:
                out.write(zero)
                continue
            tweak = (position // 512).to_bytes(16, "little")
            d = Cipher(algorithms.AES(key), modes.XTS(tweak)).decryptor()
            out.write(d.update(ct) + d.finalize())


def unchanged(a, b, data_offset, sector):
    zero = bytes(sector)
    same = 0
    for (_, x), (_, y) in zip(sectors(a, data_offset, sector), sectors(b, data_offset, sector)):
        if x == y and x != zero:
            same += 1
    print(same)


def main():
    if sys.argv[1] == "plaintext":
        plaintext(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    elif sys.argv[1] == "unchanged":
        unchanged(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
