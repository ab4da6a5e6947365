#!/usr/bin/env python3
"""Seed corpora for the LUKS harnesses, cut from real images.

Usage: seed_corpus.py OUT_DIR SOURCE...

Each SOURCE is an image file, an xz-compressed image (NAME.xz) or an xz-compressed tar archive of
images (NAME.tar.xz, read as a stream, never unpacked to disk). From every image's first bytes it
writes, under OUT_DIR, one file per seed named by its SHA-1 (as libFuzzer names corpus files):
  luks1_header/  the first 1024 bytes of a LUKS1 image (what cryptsetup reads of its header)
  luks2_image/   the first 64 KiB of any other image, LUKS2 or damaged (the harness's -max_len)
  luks2_header/  per LUKS2 header copy with a valid size: the input luks2_header_fuzzer.cc takes,
                 a byte for the header size, a flags byte (0) and the JSON text without its NULs
"""
import hashlib
import lzma
import os
import subprocess
import sys
import tarfile

# The most an image is read: both copies of the largest LUKS2 header (4 MiB each).
READ_LIMIT = 2 * (4 << 20)
LUKS1_SEED = 1024
LUKS2_IMAGE_SEED = 64 << 10
BINARY_HEADER = 4096
HDR_SIZES = [(16 << 10) << i for i in range(9)]  # 16 KiB .. 4 MiB


def save(out_dir, kind, data):
    directory = os.path.join(out_dir, kind)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def luks2_json_seeds(head):
    """The luks2_header inputs of the copies in head: primary at 0, secondary at its hdr_size."""
    seeds = []
    for offset, magic in ((0, b"LUKS\xba\xbe"), (None, b"SKUL\xba\xbe")):
        if offset is None:
            offset = int.from_bytes(head[8:16], "big")
        if offset + BINARY_HEADER > len(head) or head[offset:offset + 6] != magic:
            continue
        hdr_size = int.from_bytes(head[offset + 8:offset + 16], "big")
        if hdr_size not in HDR_SIZES:
            continue
        area = head[offset + BINARY_HEADER:offset + hdr_size]
        text = area.split(b"\0", 1)[0]
        seeds.append(bytes([HDR_SIZES.index(hdr_size), 0]) + text)
    return seeds


def add_image(out_dir, head):
    if len(head) < 8:
        return
    if head[:6] == b"LUKS\xba\xbe" and head[6:8] == b"\0\1":
        save(out_dir, "luks1_header", head[:LUKS1_SEED])
        return
    save(out_dir, "luks2_image", head[:LUKS2_IMAGE_SEED])
    for seed in luks2_json_seeds(head):
        save(out_dir, "luks2_header", seed)


def main():
    out_dir, sources = sys.argv[1], sys.argv[2:]
    for source in sources:
        if source.endswith(".tar.xz"):
            # xz decompresses far faster than Python's tarfile stream over lzma skips members.
            with subprocess.Popen(["xz", "-dc", source], stdout=subprocess.PIPE) as xz:
                with tarfile.open(fileobj=xz.stdout, mode="r|") as archive:
                    for member in archive:
                        if member.isfile():
                            add_image(out_dir, archive.extractfile(member).read(READ_LIMIT))
            if xz.returncode != 0:
                sys.exit(f"seed_corpus.py: xz -dc {source} failed")
        elif source.endswith(".xz"):
            with lzma.open(source) as f:
                add_image(out_dir, f.read(READ_LIMIT))
        else:
            with open(source, "rb") as f:
                add_image(out_dir, f.read(READ_LIMIT))


if __name__ == "__main__":
    main()
