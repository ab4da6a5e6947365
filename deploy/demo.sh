#!/usr/bin/env bash
# The main job, end to end on a local one-node Ceph cluster: install dependencies, build, start the
# cluster, create an encrypted RBD image, import a file, export it, show the plaintext matches, show
# that librbd's own LUKS layer reads the same plaintext, and say how to go on.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "installing dependencies"
bash deploy/install-deps.sh
step "building"
bash deploy/build.sh >/dev/null
RBD_LUKS=$root/build/plugin/rbd-luks

export RBD_LUKS_CEPH_DIR=${RBD_LUKS_CEPH_DIR:-/tmp/rbd-luks-demo-ceph}
export RBD_LUKS_CEPH_PORT=${RBD_LUKS_CEPH_PORT:-18789}
step "starting a one-node Ceph cluster in $RBD_LUKS_CEPH_DIR"
bash deploy/ceph-cluster.sh start >/dev/null
export CEPH_CONF=$RBD_LUKS_CEPH_DIR/ceph.conf

work=$(mktemp -d /tmp/rbd-luks-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
umask 077
head -c 32 /dev/urandom | base64 | tr -d '\n' >"$work/pass"
head -c $((40 * 1024 * 1024)) /dev/urandom >"$work/plain.bin"
rbd rm rbd/demo >/dev/null 2>&1 || true

step "creating rbd:rbd/demo: 64 MiB of plaintext, LUKS2, aes-xts-plain64, 4096-byte sectors"
"$RBD_LUKS" create rbd:rbd/demo --size 64M --passphrase-file "$work/pass" --iter-time 500
step "importing 40 MiB of random data"
"$RBD_LUKS" import "$work/plain.bin" rbd:rbd/demo --passphrase-file "$work/pass"
step "exporting the image"
"$RBD_LUKS" export rbd:rbd/demo "$work/export.bin" --passphrase-file "$work/pass"
cmp -n $((40 * 1024 * 1024)) "$work/plain.bin" "$work/export.bin"
echo "    plaintext matches ($(sha256sum <"$work/plain.bin" | cut -c1-16)...)"

step "reading it back through librbd's native LUKS layer (rbd encryption), as a peer"
/usr/bin/python3 - "$work/pass" "$work/plain.bin" <<'PYEOF'
import sys, rados, rbd
passphrase = open(sys.argv[1], "rb").read()
plain = open(sys.argv[2], "rb").read()
with rados.Rados(conffile="") as cluster, cluster.open_ioctx("rbd") as ioctx, rbd.Image(ioctx, "demo") as image:
    image.encryption_load(rbd.RBD_ENCRYPTION_FORMAT_LUKS2, passphrase)
    assert image.read(0, len(plain)) == plain, "native librbd sees different plaintext"
print("    librbd native encryption reads the same plaintext")
PYEOF

step "the header"
"$RBD_LUKS" dump rbd:rbd/demo | head -n 20

cat <<EOT

Done. The cluster keeps running so you can go on:
  export CEPH_CONF=$CEPH_CONF
  $RBD_LUKS --help
  $RBD_LUKS read rbd:rbd/demo --offset 0 --length 64 --passphrase-file PASSFILE | xxd | head
  rbd ls rbd
Stop it with:  RBD_LUKS_CEPH_DIR=$RBD_LUKS_CEPH_DIR bash deploy/ceph-cluster.sh stop
Docs: README.md, docs/cli.md, docs/local-cluster.md
EOT
