# qemu-img helpers for the shell tests (sourced, not run). The sourcing script sets WORK and CEPH_CONF.

# qemu_img_create_rbd POOL/IMAGE SIZE ARGS...: `qemu-img create ARGS rbd:POOL/IMAGE SIZE` (what Cinder
# runs), retried when qemu's own PBKDF2 timing fails on a busy machine ("Unable to get accurate CPU
# usage": qemu measured 2^15 PBKDF2 iterations as 0 ms of thread CPU time, which happens now and
# then, in bursts when the host is loaded). That happens after the RBD image was created: the retry
# removes it first, and waits a little longer each time. Any other failure is final.
qemu_img_create_rbd() {
  local image=$1 size=$2 attempt
  shift 2
  for attempt in 1 2 3 4 5 6; do
    if qemu-img create "$@" "rbd:$image:conf=$CEPH_CONF" "$size" 2>"$WORK/qemu-img.err"; then return 0; fi
    grep -q "Unable to get accurate CPU usage" "$WORK/qemu-img.err" || break
    echo "qemu-img create: attempt $attempt could not time its KDF; retrying" >&2
    rbd --client-mount-timeout 20 rm "$image" >/dev/null 2>&1 || true
    sleep "$attempt"
  done
  cat "$WORK/qemu-img.err" >&2
  return 1
}
