#!/usr/bin/env bash
# rbd-luks's verdict on cryptsetup's own test images, next to cryptsetup's on the same machine: every
# header cryptsetup can show, `dump` shows; every one it rejects, rbd-luks rejects (exit 4); a volume
# cryptsetup opens with the right passphrase either opens or is refused as unsupported (exit 1,
# another cipher for example), never as a bad header or a wrong key; one cryptsetup cannot open,
# rbd-luks does not open either. The 166 generated LUKS2 headers of cryptsetup's validation suite
# must load or fail as its EXPECTED list says. Intended differences are listed in docs/design.md
# ("Verdicts on cryptsetup's test images") and below.
#
# The images are cryptsetup's test fixtures (GPL data, not part of this repository), read from
# $RBDLUKS_CRYPTSETUP_TEST_IMAGES, by default ../shared/cryptsetup-test-images next to the
# checkout; without them the test is skipped (exit 77).
source "$TEST_LIB"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)
IMAGES=${RBDLUKS_CRYPTSETUP_TEST_IMAGES:-$ROOT/../shared/cryptsetup-test-images}
if [ ! -f "$IMAGES/SOURCE.txt" ]; then
  echo "SKIP: cryptsetup's test images are not at $IMAGES (set RBDLUKS_CRYPTSETUP_TEST_IMAGES)"
  exit 77
fi

D=$WORK/images
mkdir -p "$D"
for archive in luks1-images luks2_header_requirements LUKS-d238e48a-0ed3-4169-b841-f26b44693134 \
               luks2-validation-images luks2-validation-images-argon2i; do
  mkdir -p "$D/$archive" && tar -xJf "$IMAGES/$archive.tar.xz" -C "$D/$archive"
done
for image in compatimage compatimage2 compatv10image luks2_invalid_cipher luks2_keyslot_unassigned \
             luks2_valid_hdr blkid-luks2-pv; do
  xz -dc "$IMAGES/$image.img.xz" >"$D/$image.img"
done
for image in valid_header_file evil_hdr-keyslot_overlap evil_hdr-luks_hdr_damage evil_hdr-payload_overwrite \
             evil_hdr-small_luks_device evil_hdr-stripes_payload_dmg; do
  xz -dc "$IMAGES/$image.xz" >"$D/$image"
done

# The passphrases of SOURCE.txt, as files.
P_COMPAT=$(passfile compat compatkey)
P_ORG=$(passfile org 93R4P4pIqAH8)
P_REQ=$(passfile req blablabl)
P_NONE=$(passfile none "no passphrase opens this")
passphrase_for() {
  case "$1" in
    */luks1-images/*) echo "$D/luks1-images/luks1-images/keyfile1" ;;
    *compatimage* | *compatv10image* | *keyslot_unassigned* | *valid_header_file) echo "$P_COMPAT" ;;
    *invalid_cipher* | *LUKS-d238*) echo "$P_ORG" ;;
    *requirements*) echo "$P_REQ" ;;
    *) echo "$P_NONE" ;;
  esac
}

# Intended differences (docs/design.md): the header is valid to cryptsetup, rbd-luks refuses it.
declare -A REFUSED=(
  # A LUKS1 header whose payload lies past the end of the image: there is no data to serve.
  ["LUKS-d238e48a-0ed3-4169-b841-f26b44693134.org"]="past the image end"
)

checked=0
verdict() {  # verdict IMAGE: compares cryptsetup's and rbd-luks's view of one image
  local image=$1 key cs_dump=0 cs_open=0 name
  name=$(basename "$image")
  key=$(passphrase_for "$image")
  cryptsetup luksDump "$image" >/dev/null 2>&1 || cs_dump=$?
  cryptsetup open --test-passphrase --key-file "$key" "$image" >/dev/null 2>&1 || cs_open=$?
  if [ -n "${REFUSED[$name]:-}" ]; then
    [ "$cs_dump" = 0 ] || fail "$name: cryptsetup no longer shows it; update the list of intended differences"
    expect_exit 4 "$RBD_LUKS" dump "file:$image"
    err_has "${REFUSED[$name]}"
  elif [ "$cs_dump" = 0 ]; then
    expect_exit 0 "$RBD_LUKS" dump "file:$image"
    local rc=0
    "$RBD_LUKS" check "file:$image" --passphrase-file "$key" >/dev/null 2>"$WORK/check.err" || rc=$?
    if [ "$cs_open" = 0 ]; then
      case $rc in
        0) ;;
        1) # Refused as unsupported: dump says why, and check says the same.
           local why
           why=$(sed -n 's/^Unsupported: *\t*\(.*\) (shown, not opened)$/\1/p' "$WORK/out")
           [ -n "$why" ] || fail "$name: check exits 1 but dump does not say why it cannot be opened"
           grep -qF -- "$why" "$WORK/check.err" || fail "$name: check says $(cat "$WORK/check.err"), dump: $why" ;;
        *) fail "$name: cryptsetup opens it, rbd-luks check exits $rc: $(cat "$WORK/check.err")" ;;
      esac
    else
      [ "$rc" != 0 ] || fail "$name: cryptsetup cannot open it with this passphrase (exit $cs_open), rbd-luks can"
    fi
  else
    expect_exit 4 "$RBD_LUKS" dump "file:$image"
    expect_exit 4 "$RBD_LUKS" check "file:$image" --passphrase-file "$key"
  fi
  checked=$((checked + 1))
}

for image in "$D"/luks1-images/luks1-images/*.img "$D"/*.img "$D"/valid_header_file "$D"/evil_hdr-* \
             "$D"/luks2_header_requirements/luks2_header_requirements* "$D"/LUKS-d238*/*.org; do
  verdict "$image"
done
pass "$checked images: rbd-luks's dump and check agree with cryptsetup's verdicts, intended differences aside"

# The unbound keyslot (slot 1 of luks2_keyslot_unassigned) opens nothing, as with cryptsetup.
expect_exit 3 "$RBD_LUKS" check "file:$D/luks2_keyslot_unassigned.img" --passphrase-file "$P_ORG"
if cryptsetup open --test-passphrase --key-file "$P_ORG" "$D/luks2_keyslot_unassigned.img" >/dev/null 2>&1; then
  fail "cryptsetup opens the volume with the unbound keyslot's passphrase"
fi
pass "the unbound keyslot's passphrase opens the volume for neither"

# cryptsetup's LUKS2 validation suite: R must load, F must be rejected (T needs a token removed first).
for set in luks2-validation-images luks2-validation-images-argon2i; do
  n=0
  while read -r name expected; do
    image=$D/$set/luks2-images/$name
    case $expected in
      R) expect_exit 0 "$RBD_LUKS" dump "file:$image" ;;
      F) expect_exit 4 "$RBD_LUKS" dump "file:$image" ;;
      T) continue ;;
      *) fail "$set: unknown verdict '$expected' for $name" ;;
    esac
    n=$((n + 1))
  done <"$D/$set/luks2-images/EXPECTED"
  [ "$n" -gt 80 ] || fail "$set: only $n images checked"
  pass "$set: $n headers load or fail as cryptsetup's EXPECTED says"
done
