# Helpers for the shell tests against a Ceph cluster (tests/rbd/*.sh), on top of common.bash, which
# this sources. Sourced, not run.
# shellcheck source-path=SCRIPTDIR source=common.bash
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

# rbd with a bounded wait for the monitors, so a dead cluster fails a test instead of hanging it.
rbdc() { rbd --client-mount-timeout 20 "$@"; }

# remove_images POOL/IMAGE...: removes each image with its snapshots, quietly, for cleanup traps.
remove_images() {
  local image
  for image in "$@"; do
    rbdc snap purge "$image" >/dev/null 2>&1 || true
    rbdc rm "$image" >/dev/null 2>&1 || true
  done
}
