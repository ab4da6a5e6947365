/* write_read: a minimal client of librbd_luks's C API. Writes MESSAGE at byte OFFSET of the
 * plaintext of an rbd-luks (or librbd native LUKS) image with an asynchronous request, flushes,
 * and reads the bytes back synchronously. Any offset works: the library handles partial sectors.
 *
 *   cc write_read.c $(pkg-config --cflags --libs rbd_luks) -o write_read
 *   ./write_read POOL IMAGE PASSPHRASE_FILE OFFSET MESSAGE
 *
 * The passphrase is read from a file, byte for byte like cryptsetup's --key-file, never from the
 * command line. The cluster is found as the rbd command finds it (CEPH_CONF, /etc/ceph/ceph.conf).
 * Exits 0 when the bytes read back are the ones written. */
#include <errno.h>
#include <rados/librados.h>
#include <rbd_luks/librbd_luks.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char* what, int r) {
  fprintf(stderr, "write_read: %s: %s (%s)\n", what, strerror(-r), rbd_luks_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: write_read POOL IMAGE PASSPHRASE_FILE OFFSET MESSAGE\n");
    return 2;
  }
  const char* pool = argv[1];
  const char* name = argv[2];
  const unsigned long long offset = strtoull(argv[4], NULL, 0);
  const char* message = argv[5];
  const size_t length = strlen(message);

  char passphrase[512];
  FILE* file = fopen(argv[3], "rb");
  if (file == NULL) return fail("open passphrase file", -errno);
  const size_t passphrase_len = fread(passphrase, 1, sizeof passphrase, file);
  fclose(file);

  rados_t cluster;
  rados_ioctx_t io;
  int r = rados_create(&cluster, NULL);
  if (r == 0) r = rados_conf_read_file(cluster, NULL);
  if (r == 0) r = rados_connect(cluster);
  if (r < 0) return fail("connect to the cluster", r);
  if ((r = rados_ioctx_create(cluster, pool, &io)) < 0) return fail("open pool", r);

  rbd_luks_image_t image;
  r = rbd_luks_open(io, name, NULL, passphrase, passphrase_len, &image);
  memset(passphrase, 0, sizeof passphrase); /* a real client keeps it in locked memory */
  rados_ioctx_destroy(io);                  /* the image keeps its own */
  if (r < 0) return fail("open image", r);

  rbd_luks_completion_t c;
  if ((r = rbd_luks_aio_create_completion(NULL, NULL, &c)) < 0) return fail("create completion", r);
  if ((r = rbd_luks_aio_write(image, offset, length, message, c, 0)) < 0) return fail("submit write", r);
  rbd_luks_aio_wait_for_complete(c);
  const ssize_t written = rbd_luks_aio_get_return_value(c); /* as in librbd: 0 for a write */
  rbd_luks_aio_release(c);
  if (written < 0) return fail("write", (int)written);
  if ((r = rbd_luks_flush(image)) < 0) return fail("flush", r);

  char* back = malloc(length);
  if (back == NULL) return fail("allocate", -ENOMEM);
  const ssize_t read = rbd_luks_read(image, offset, length, back, 0);
  if (read != (ssize_t)length) return fail("read", read < 0 ? (int)read : -EIO);
  const int same = memcmp(back, message, length) == 0;
  free(back);

  /* Close flushes once more and says whether everything written is durable. */
  if ((r = rbd_luks_close(image)) < 0) return fail("close", r);
  rados_shutdown(cluster);
  printf("%s: %zu bytes at %llu %s\n", name, length, offset, same ? "written and read back" : "READ BACK DIFFERENTLY");
  return same ? 0 : 1;
}
