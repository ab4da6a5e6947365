/*
 * librbd_luks: LUKS-encrypted RBD images for librbd client programs (C API).
 *
 * Opens an RBD image that holds a LUKS1 or LUKS2 volume (made by `rbd encryption format`,
 * `rbd-luks format`, cryptsetup or qemu-img) and gives read/write access to its plaintext, in the
 * style of librbd's C API: the same argument order, return conventions and completion model.
 * The data format is librbd's native encryption, so either can read what the other wrote.
 *
 * Sizes and offsets are plaintext ones: the LUKS header is hidden, offset 0 is the first byte of the
 * data segment and the size is the RBD image size minus the data offset.
 *
 * Return values: 0 or a byte count on success, a negative errno on failure. Besides the errors that
 * librbd and librados pass through, from every call (-ENOENT for a missing pool, image or snapshot,
 * -ESHUTDOWN when the cluster blocklisted the client, -ETIMEDOUT when it did not answer within
 * rados_osd_op_timeout, ...):
 *   -EACCES      the passphrase opens no keyslot
 *   -EINVAL      no valid LUKS header, an invalid argument, or a non-empty request that starts at
 *                or past the end of the image (one that runs past the end is cut short there, as
 *                in librbd, and returns the bytes it covered)
 *   -EOPNOTSUPP  a valid LUKS header with a cipher or feature this library does not implement
 *   -EROFS       a change to an image opened read-only or at a snapshot
 *   -ENOMEM      out of memory
 *   -EIO         any other failure
 * rbd_luks_last_error() says more about the last failure of a call made in the calling thread.
 *
 * Asynchronous requests complete through an rbd_luks_completion_t, like librbd's rbd_completion_t:
 * the callback runs on a librbd or library thread (never inside the submitting call), then
 * rbd_luks_aio_wait_for_complete returns. A completion serves one request; release it with
 * rbd_luks_aio_release (the callback may do so). Callbacks must not block on I/O of the same image
 * and must not close it. Buffers must stay valid until the request completes; iovec arrays may be
 * freed as soon as the submitting call returns. Requests of any alignment are allowed.
 *
 * Thread safety: an image handle may be used from many threads at once, except rbd_luks_close.
 */
#ifndef RBD_LUKS_LIBRBD_LUKS_H
#define RBD_LUKS_LIBRBD_LUKS_H

#include <rados/librados.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RBD_LUKS_API __attribute__((visibility("default")))

typedef void* rbd_luks_image_t;
typedef void* rbd_luks_completion_t;
typedef void (*rbd_luks_callback_t)(rbd_luks_completion_t c, void* arg);

/* Opens image `name` in the pool and namespace of `io`, read-write, or read-only at snapshot
 * `snap_name` when that is not NULL. The passphrase is passphrase_len bytes, not NUL-terminated.
 * `io` may be destroyed once this returns; its cluster handle must outlive the image. */
RBD_LUKS_API int rbd_luks_open(rados_ioctx_t io, const char* name, const char* snap_name, const char* passphrase,
                               size_t passphrase_len, rbd_luks_image_t* image);
RBD_LUKS_API int rbd_luks_open_read_only(rados_ioctx_t io, const char* name, const char* snap_name,
                                         const char* passphrase, size_t passphrase_len, rbd_luks_image_t* image);
/* Opens with the key the image's metadata refers to (rbd-luks.key-ref, recorded by
 * `rbd-luks format --new-key/--key-ref` or `rbd-luks key-ref set`), fetched from its keyring
 * (config-key through io's cluster, Barbican with the settings of $RBD_LUKS_CONF and OS_* variables).
 * -ENOKEY when the image records no reference or the keyring refuses or cannot be reached. */
RBD_LUKS_API int rbd_luks_open_with_stored_key(rados_ioctx_t io, const char* name, const char* snap_name, int read_only,
                                               rbd_luks_image_t* image);
/* As rbd_luks_open_with_stored_key, for images whose writers are not fully trusted (anyone who can
 * write an image can change its metadata): accepts only the references that accepted_key_refs lists,
 * a comma-separated list of keyrings ("barbican", "config-key", "file") and "file:DIR" entries, which
 * accept a key file directly in the absolute directory DIR; e.g. "config-key,barbican" or
 * "barbican,file:/etc/rbd-luks/keys". NULL accepts every reference. -ENOKEY when the reference is
 * not accepted, -EINVAL when the list is malformed. Whatever the list, a key file must be a regular
 * file of the caller or root that no one else may access, or it is -ENOKEY. */
RBD_LUKS_API int rbd_luks_open_with_stored_key_accepting(rados_ioctx_t io, const char* name, const char* snap_name,
                                                         int read_only, const char* accepted_key_refs,
                                                         rbd_luks_image_t* image);
/* Waits for the image's requests in flight, flushes and closes the image. Returns 0, or the first
 * failure as a negative errno, e.g. -ESHUTDOWN (the client was blocklisted) or -ETIMEDOUT when data
 * that librbd's cache had acknowledged could not be written: then the data is not durable. The
 * handle is gone either way. */
RBD_LUKS_API int rbd_luks_close(rbd_luks_image_t image);

RBD_LUKS_API int rbd_luks_get_size(rbd_luks_image_t image, uint64_t* size);
/* Plaintext size, a multiple of the encryption sector size (512 or 4096 bytes). */
RBD_LUKS_API int rbd_luks_resize(rbd_luks_image_t image, uint64_t size);

/* op_flags: LIBRADOS_OP_FLAG_FADVISE_* from librados.h, or 0. */
RBD_LUKS_API ssize_t rbd_luks_read(rbd_luks_image_t image, uint64_t ofs, size_t len, char* buf, int op_flags);
RBD_LUKS_API ssize_t rbd_luks_write(rbd_luks_image_t image, uint64_t ofs, size_t len, const char* buf, int op_flags);
/* Both make the range read back as zeros and return len (discard: at most INT_MAX bytes). */
RBD_LUKS_API int rbd_luks_discard(rbd_luks_image_t image, uint64_t ofs, uint64_t len);
RBD_LUKS_API ssize_t rbd_luks_write_zeroes(rbd_luks_image_t image, uint64_t ofs, size_t len);
RBD_LUKS_API int rbd_luks_flush(rbd_luks_image_t image);

/* Calls cb(offset, length, arg) in order for each part of plaintext [ofs, ofs + len) that may hold
 * data: the RBD objects that exist (librbd's diff iteration against the image's beginning, parent
 * included), shifted past the LUKS header and clipped to the range. The rest reads as zeros, so a
 * copy may skip it. A negative return of cb stops the walk and is returned; else 0 or -errno. */
RBD_LUKS_API int rbd_luks_allocated_extents(rbd_luks_image_t image, uint64_t ofs, uint64_t len,
                                            int (*cb)(uint64_t offset, uint64_t length, void* arg), void* arg);

RBD_LUKS_API int rbd_luks_aio_create_completion(void* cb_arg, rbd_luks_callback_t complete_cb,
                                                rbd_luks_completion_t* c);
RBD_LUKS_API int rbd_luks_aio_read(rbd_luks_image_t image, uint64_t off, size_t len, char* buf, rbd_luks_completion_t c,
                                   int op_flags);
RBD_LUKS_API int rbd_luks_aio_readv(rbd_luks_image_t image, const struct iovec* iov, int iovcnt, uint64_t off,
                                    rbd_luks_completion_t c);
RBD_LUKS_API int rbd_luks_aio_write(rbd_luks_image_t image, uint64_t off, size_t len, const char* buf,
                                    rbd_luks_completion_t c, int op_flags);
RBD_LUKS_API int rbd_luks_aio_writev(rbd_luks_image_t image, const struct iovec* iov, int iovcnt, uint64_t off,
                                     rbd_luks_completion_t c);
RBD_LUKS_API int rbd_luks_aio_discard(rbd_luks_image_t image, uint64_t off, uint64_t len, rbd_luks_completion_t c);
RBD_LUKS_API int rbd_luks_aio_write_zeroes(rbd_luks_image_t image, uint64_t off, size_t len, rbd_luks_completion_t c);
RBD_LUKS_API int rbd_luks_aio_flush(rbd_luks_image_t image, rbd_luks_completion_t c);
RBD_LUKS_API int rbd_luks_aio_is_complete(rbd_luks_completion_t c);
RBD_LUKS_API int rbd_luks_aio_wait_for_complete(rbd_luks_completion_t c);
/* As librbd: the byte count for reads, 0 for writes, discard, write_zeroes and flush, or a
 * negative errno. */
RBD_LUKS_API ssize_t rbd_luks_aio_get_return_value(rbd_luks_completion_t c);
RBD_LUKS_API void* rbd_luks_aio_get_arg(rbd_luks_completion_t c);
RBD_LUKS_API void rbd_luks_aio_release(rbd_luks_completion_t c);

/* Image metadata (key/value pairs kept in the RBD image header), as rbd_metadata_*: get and remove
 * return -ENOENT for an absent key; get returns -ERANGE (with *val_len set to the size needed, NUL
 * included) when the value does not fit. */
RBD_LUKS_API int rbd_luks_metadata_get(rbd_luks_image_t image, const char* key, char* value, size_t* val_len);
RBD_LUKS_API int rbd_luks_metadata_set(rbd_luks_image_t image, const char* key, const char* value);
RBD_LUKS_API int rbd_luks_metadata_remove(rbd_luks_image_t image, const char* key);

/* Online reencryption: a new random volume key (same cipher and key size), every sector rewritten
 * under it while the image goes on serving I/O from other threads (a request on the hotzone being
 * moved, hotzone_bytes of plaintext or 4 MiB when 0, waits for it), and every keyslot that one of
 * the `count` passphrases opens re-wrapped (passphrases[i] is passphrase_lens[i] bytes). Blocks
 * until done; 0 on success. A keyslot that no passphrase opens makes it fail with -EINVAL before
 * anything changes, unless flags has RBD_LUKS_REENCRYPT_DROP_UNOPENED_KEYSLOTS. Fails while another
 * client has the image open. Once per open image (-EINVAL after that). A run that stops between steps leaves the image
 * serving with both keys; one that fails inside a step stops its I/O (-ESTALE). Either way no
 * client opens the volume until `rbd-luks reencrypt` finishes the run. -EBUSY when another client
 * has the image open, -EACCES when no passphrase opens it. */
#define RBD_LUKS_REENCRYPT_DROP_UNOPENED_KEYSLOTS 1
RBD_LUKS_API int rbd_luks_reencrypt(rbd_luks_image_t image, const char* const* passphrases,
                                    const size_t* passphrase_lens, size_t count, uint64_t hotzone_bytes, int flags);
/* Runs, in this process and until the image closes, the online reencryptions that
 * `rbd-luks reencrypt TARGET --online` asks for: the command records a request in the image's
 * metadata, and this image runs it as rbd_luks_reencrypt does, on a thread of the library's,
 * re-wrapping the keyslot that its stored key opens (fetched again when a request comes), and writes
 * its progress and outcome back for the command to report. Closing the image stops a run between
 * steps (`rbd-luks reencrypt` then finishes it). shared_handles: librbd handles of this image that
 * the program keeps open and does no I/O through, which would otherwise count as other clients.
 * Only for an image opened read-write with rbd_luks_open_with_stored_key(_accepting): -EINVAL for
 * one opened with a passphrase (the library keeps none), -EROFS for a read-only one. Calling it again
 * changes nothing. */
RBD_LUKS_API int rbd_luks_follow_reencrypt_requests(rbd_luks_image_t image, unsigned shared_handles);

/* A one-line description of the last failure of a call made in this thread ("" if none); valid until
 * the next call in this thread. Never contains a passphrase or key. */
RBD_LUKS_API const char* rbd_luks_last_error(void);

/* Keys, passphrases and key schedules live in memory that is locked (never swapped out), kept out of
 * core dumps and away from forked children. 0 while all of it could be locked; else the errno of the
 * first mlock that failed in this process (ENOMEM: RLIMIT_MEMLOCK exhausted; EPERM), after which
 * some secrets may be swapped out: raise RLIMIT_MEMLOCK (ulimit -l, systemd's LimitMEMLOCK=) or
 * grant CAP_IPC_LOCK. */
RBD_LUKS_API int rbd_luks_secure_memory_error(void);
/* warn is called once, the first time memory for secrets cannot be locked, with a one-line message
 * (never a secret); NULL calls nothing (the default). Set it before opening images; warn must not
 * call into this library. */
RBD_LUKS_API void rbd_luks_set_secure_memory_warning(void (*warn)(const char* message));

/* Opening a keyslot formatted with argon2 holds its memory cost (up to 1 GiB as cryptsetup formats;
 * up to 4 GiB in headers this library accepts) for the derivation, about the unlock time it was
 * formatted for. Derivations running at once in this process (opens, keyslot changes, formats) hold
 * at most `bytes` together; the others wait for memory to be given back. One derivation larger than
 * the ceiling runs alone. 0 lifts the ceiling. The default is half of physical memory, or the value
 * of RBD_LUKS_KDF_MEMORY_LIMIT (bytes, or with K, M or G) read at the first use of the ceiling
 * (a derivation, or either call below). */
RBD_LUKS_API void rbd_luks_set_kdf_memory_limit(uint64_t bytes);
RBD_LUKS_API uint64_t rbd_luks_get_kdf_memory_limit(void);

#ifdef __cplusplus
}
#endif

#endif /* RBD_LUKS_LIBRBD_LUKS_H */
