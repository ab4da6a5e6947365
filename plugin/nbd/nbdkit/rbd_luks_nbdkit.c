/* nbdkit-rbdluks-plugin.so: an nbdkit plugin that serves the plaintext of an RBD image encrypted
 * with LUKS, through librbd_luks's C API, to any NBD client: nbd-client or qemu-nbd -c on a host
 * (a /dev/nbdX for a filesystem or Kubernetes), qemu-img, nbdcopy, fio's nbd engine.
 *
 *   nbdkit rbdluks image=POOL[/NAMESPACE]/IMAGE [passphrase-file=FILE] [accept-key-refs=LIST]
 *                  [conf=CEPH_CONF] [id=CLIENT_ID] [snapshot=SNAP]
 *
 * The image is opened before nbdkit listens (get_ready), so a wrong key or a missing image is an
 * error at start, never a connection that serves garbage; every connection then shares one image
 * (opened again after nbdkit forks, below), and
 * rbd-luks is safe to call from many threads, so the thread model is parallel and multi-conn is
 * advertised (a flush on one connection covers the writes of all). Without passphrase-file the key
 * is the one the image's metadata refers to (rbd-luks key-ref), limited to accept-key-refs when
 * given. Trim and zero are rbd-luks's discard and write-zeroes, which keep the image thin, and
 * extents come from the image's allocation map, so nbdcopy and qemu-img skip what holds nothing. */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <rados/librados.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rbd_luks/librbd_luks.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static char* image_spec;      /* POOL[/NAMESPACE]/IMAGE */
static char* passphrase_file; /* NULL: the key reference in the image metadata */
static char* accepted_refs;   /* NULL: every reference the metadata may hold */
static char* ceph_conf;       /* NULL: librados's defaults (CEPH_CONF, /etc/ceph/ceph.conf) */
static char* client_id;       /* NULL: admin */
static char* snapshot;

static rados_t cluster;
static rados_ioctx_t io;
static rbd_luks_image_t image;
static int image_read_only;

static void close_image(void) {
  if (image != NULL) {
    int r = rbd_luks_close(image);
    if (r < 0) nbdkit_error("rbdluks: close %s: %s", image_spec, rbd_luks_last_error());
    image = NULL;
  }
  if (io != NULL) rados_ioctx_destroy(io);
  io = NULL;
  if (cluster != NULL) rados_shutdown(cluster);
  cluster = NULL;
}

static void rbdluks_unload(void) {
  close_image();
  free(image_spec);
  free(passphrase_file);
  free(accepted_refs);
  free(ceph_conf);
  free(client_id);
  free(snapshot);
}

static int set_string(char** field, const char* value) {
  free(*field);
  *field = strdup(value);
  if (*field == NULL) {
    nbdkit_error("rbdluks: out of memory");
    return -1;
  }
  return 0;
}

static int rbdluks_config(const char* key, const char* value) {
  if (strcmp(key, "image") == 0) return set_string(&image_spec, value);
  if (strcmp(key, "passphrase-file") == 0) {
    free(passphrase_file);
    passphrase_file = nbdkit_absolute_path(value); /* nbdkit changes directory to / later */
    return passphrase_file == NULL ? -1 : 0;
  }
  if (strcmp(key, "accept-key-refs") == 0) return set_string(&accepted_refs, value);
  if (strcmp(key, "conf") == 0) {
    free(ceph_conf);
    ceph_conf = nbdkit_absolute_path(value);
    return ceph_conf == NULL ? -1 : 0;
  }
  if (strcmp(key, "id") == 0) return set_string(&client_id, value);
  if (strcmp(key, "snapshot") == 0) return set_string(&snapshot, value);
  nbdkit_error("rbdluks: unknown parameter '%s' (see nbdkit rbdluks --help)", key);
  return -1;
}

static int rbdluks_config_complete(void) {
  if (image_spec == NULL) {
    nbdkit_error("rbdluks: image=POOL[/NAMESPACE]/IMAGE is required");
    return -1;
  }
  return 0;
}

#define rbdluks_config_help                                                              \
  "image=POOL[/NAMESPACE]/IMAGE (required) the encrypted RBD image\n"                    \
  "passphrase-file=FILE   the passphrase (default: the image's key reference)\n"         \
  "accept-key-refs=LIST   key references the image metadata may name, e.g. config-key\n" \
  "conf=FILE              ceph.conf (default: CEPH_CONF, then /etc/ceph/ceph.conf)\n"    \
  "id=NAME                Ceph client id (default: admin)\n"                             \
  "snapshot=SNAP          serve this snapshot, read-only"

/* The most a passphrase file may hold, in locked memory. */
#define PASSPHRASE_AREA ((size_t)64 * 1024)

/* Reads the passphrase file into locked memory; *len gets its length. */
static char* read_passphrase(size_t* len) {
  int fd = open(passphrase_file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    nbdkit_error("rbdluks: open %s: %m", passphrase_file);
    return NULL;
  }
  const size_t max = PASSPHRASE_AREA;
  char* buffer = mmap(NULL, max, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buffer == MAP_FAILED) {
    nbdkit_error("rbdluks: memory for the passphrase: %m");
    close(fd);
    return NULL;
  }
  mlock(buffer, max); /* best effort, as rbd-luks's own secure memory */
  madvise(buffer, max, MADV_DONTDUMP);
  size_t done = 0;
  for (;;) {
    ssize_t n = read(fd, buffer + done, max - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      nbdkit_error("rbdluks: read %s: %m", passphrase_file);
      munmap(buffer, max);
      close(fd);
      return NULL;
    }
    if (n == 0) break;
    done += (size_t)n;
    if (done == max) {
      nbdkit_error("rbdluks: %s is larger than a passphrase can be", passphrase_file);
      munmap(buffer, max);
      close(fd);
      return NULL;
    }
  }
  close(fd);
  *len = done;
  return buffer;
}

static void forget_passphrase(char* buffer) {
  explicit_bzero(buffer, PASSPHRASE_AREA);
  munmap(buffer, PASSPHRASE_AREA);
}

/* Connects to the cluster and opens the image: rbd-luks checks the key here. */
static int open_image(void) {
  char* spec = strdup(image_spec);
  if (spec == NULL) return -1;
  char* first = strchr(spec, '/');
  char* last = strrchr(spec, '/');
  if (first == NULL || last[1] == '\0' || first == spec) {
    nbdkit_error("rbdluks: image=%s is not POOL[/NAMESPACE]/IMAGE", image_spec);
    free(spec);
    return -1;
  }
  *first = '\0';
  const char* pool = spec;
  const char* name_space = first == last ? "" : first + 1;
  *last = '\0';
  const char* name = last + 1;

  int r = rados_create(&cluster, client_id);
  if (r == 0) r = rados_conf_read_file(cluster, ceph_conf);
  if (r == 0) r = rados_conf_parse_env(cluster, NULL);
  if (r == 0) r = rados_connect(cluster);
  if (r == 0) r = rados_ioctx_create(cluster, pool, &io);
  if (r < 0) {
    errno = -r;
    nbdkit_error("rbdluks: connect to pool %s: %m", pool);
    free(spec);
    return -1;
  }
  rados_ioctx_set_namespace(io, name_space);

  image_read_only = snapshot != NULL;
  if (passphrase_file != NULL) {
    size_t len = 0;
    char* secret = read_passphrase(&len);
    if (secret == NULL) {
      free(spec);
      return -1;
    }
    r = image_read_only ? rbd_luks_open_read_only(io, name, snapshot, secret, len, &image)
                        : rbd_luks_open(io, name, snapshot, secret, len, &image);
    forget_passphrase(secret);
  } else if (accepted_refs != NULL) {
    r = rbd_luks_open_with_stored_key_accepting(io, name, snapshot, image_read_only, accepted_refs, &image);
  } else {
    r = rbd_luks_open_with_stored_key(io, name, snapshot, image_read_only, &image);
  }
  if (r < 0) {
    nbdkit_error("rbdluks: open %s: %s", image_spec, rbd_luks_last_error());
    image = NULL;
    free(spec);
    return -1;
  }
  free(spec);
  return 0;
}

/* nbdkit forks (into the background, or to --run a command) after get_ready, and a child keeps none
 * of librados's threads: so the image is opened once before, where a wrong key or a missing image
 * stops nbdkit before it listens, closed again, and opened for good after the fork. The key is
 * derived twice. */
static int rbdluks_get_ready(void) {
  int r = open_image();
  close_image();
  return r;
}

static int rbdluks_after_fork(void) { return open_image(); }

/* One image for every connection: the handle carries nothing of its own. */
static void* rbdluks_open(int readonly) {
  (void)readonly;
  return &image;
}

static int64_t rbdluks_get_size(void* handle) {
  (void)handle;
  uint64_t size = 0;
  int r = rbd_luks_get_size(image, &size);
  if (r < 0) {
    nbdkit_error("rbdluks: size of %s: %s", image_spec, rbd_luks_last_error());
    errno = -r;
    return -1;
  }
  return (int64_t)size;
}

static int rbdluks_can_write(void* handle) {
  (void)handle;
  return !image_read_only;
}

static int rbdluks_true(void* handle) {
  (void)handle;
  return 1;
}

static int rbdluks_can_fua(void* handle) {
  (void)handle;
  return NBDKIT_FUA_EMULATE; /* nbdkit follows a FUA write with a flush */
}

static int failed(int r, const char* what, uint64_t offset, uint32_t count) {
  nbdkit_error("rbdluks: %s %s, %u bytes at %llu: %s", what, image_spec, count, (unsigned long long)offset,
               rbd_luks_last_error());
  errno = -r;
  return -1;
}

static int rbdluks_pread(void* handle, void* buf, uint32_t count, uint64_t offset, uint32_t flags) {
  (void)handle;
  (void)flags;
  ssize_t r = rbd_luks_read(image, offset, count, buf, 0);
  if (r < 0) return failed((int)r, "read", offset, count);
  if ((uint64_t)r != count) return failed(-EIO, "short read of", offset, count);
  return 0;
}

static int rbdluks_pwrite(void* handle, const void* buf, uint32_t count, uint64_t offset, uint32_t flags) {
  (void)handle;
  (void)flags;
  ssize_t r = rbd_luks_write(image, offset, count, buf, 0);
  if (r < 0) return failed((int)r, "write", offset, count);
  if ((uint64_t)r != count) return failed(-EIO, "short write of", offset, count);
  return 0;
}

static int rbdluks_flush(void* handle, uint32_t flags) {
  (void)handle;
  (void)flags;
  int r = rbd_luks_flush(image);
  return r < 0 ? failed(r, "flush", 0, 0) : 0;
}

static int rbdluks_trim(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  (void)handle;
  (void)flags;
  /* rbd_luks_discard returns the length as an int: pieces of 1 GiB. */
  for (uint64_t done = 0; done < count;) {
    uint64_t piece = count - done < (1u << 30) ? count - done : (1u << 30);
    int r = rbd_luks_discard(image, offset + done, piece);
    if (r < 0) return failed(r, "trim", offset, count);
    done += piece;
  }
  return 0;
}

static int rbdluks_zero(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  (void)handle;
  (void)flags;
  ssize_t r = rbd_luks_write_zeroes(image, offset, count);
  return r < 0 ? failed((int)r, "zero", offset, count) : 0;
}

struct extent_walk {
  struct nbdkit_extents* extents;
  uint64_t at; /* end of what has been added */
};

static int add_allocated(uint64_t offset, uint64_t length, void* arg) {
  struct extent_walk* walk = arg;
  if (offset > walk->at &&
      nbdkit_add_extent(walk->extents, walk->at, offset - walk->at, NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) < 0) {
    return -EIO;
  }
  if (nbdkit_add_extent(walk->extents, offset, length, 0) < 0) return -EIO;
  walk->at = offset + length;
  return 0;
}

static int rbdluks_extents(void* handle, uint32_t count, uint64_t offset, uint32_t flags,
                           struct nbdkit_extents* extents) {
  (void)handle;
  (void)flags;
  struct extent_walk walk = {extents, offset};
  int r = rbd_luks_allocated_extents(image, offset, count, add_allocated, &walk);
  if (r < 0) return failed(r, "find the allocated extents of", offset, count);
  if (walk.at < offset + count &&
      nbdkit_add_extent(extents, walk.at, offset + count - walk.at, NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) < 0) {
    return -1;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
    .name = "rbdluks",
    .longname = "rbd-luks: LUKS-encrypted Ceph RBD images",
    .version = "1",
    .description = "Serves the plaintext of a LUKS-encrypted RBD image",
    .unload = rbdluks_unload,
    .config = rbdluks_config,
    .config_complete = rbdluks_config_complete,
    .config_help = rbdluks_config_help,
    .magic_config_key = "image",
    .get_ready = rbdluks_get_ready,
    .after_fork = rbdluks_after_fork,
    .open = rbdluks_open,
    .get_size = rbdluks_get_size,
    .can_write = rbdluks_can_write,
    .can_flush = rbdluks_true,
    .can_trim = rbdluks_true,
    .can_zero = rbdluks_true,
    .can_fua = rbdluks_can_fua,
    .can_multi_conn = rbdluks_true,
    .can_extents = rbdluks_true,
    .pread = rbdluks_pread,
    .pwrite = rbdluks_pwrite,
    .flush = rbdluks_flush,
    .trim = rbdluks_trim,
    .zero = rbdluks_zero,
    .extents = rbdluks_extents,
    .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN(plugin)
