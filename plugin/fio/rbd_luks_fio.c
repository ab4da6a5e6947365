/*
 * rbd_luks_fio: a fio external ioengine for RBD images encrypted with LUKS, through librbd_luks.
 *
 *   ioengine=external:/path/to/rbd_luks_fio.so
 *   pool=rbd  rbdname=IMAGE  [clientname=ID]  [clustername=NAME]  [passphrase_file=PATH]
 *
 * The options and the structure are those of fio's built-in rbd engine (engines/rbd.c), so a job
 * for plain librbd runs against an encrypted image by changing the ioengine line. Each job opens
 * its own rados connection and image handle. The key is the passphrase in passphrase_file, or else
 * the key that the image's metadata refers to (rbd_luks_open_with_stored_key). The job's file is the
 * plaintext volume: offset 0 is the first byte after the LUKS header and its size is the plaintext
 * size, so fio's size= defaults to the whole encrypted volume. See docs/fio.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rbd_luks/librbd_luks.h>

#include "fio.h"
#include "optgroup.h"

/* Room for any typed passphrase and for key files of random bytes (stored keys are 64 bytes); on the stack. */
#define MAX_PASSPHRASE 8192

struct rbd_luks_options {
  void* pad; /* fio keeps a pointer at offset 0, and takes an option there for one without storage */
  char* cluster_name;
  char* rbd_name;
  char* pool_name;
  char* client_name;
  char* passphrase_file;
};

static struct fio_option options[] = {
    {
        .name = "clustername",
        .lname = "ceph cluster name",
        .type = FIO_OPT_STR_STORE,
        .help = "Cluster name for ceph",
        .off1 = offsetof(struct rbd_luks_options, cluster_name),
        .category = FIO_OPT_C_ENGINE,
        .group = FIO_OPT_G_RBD,
    },
    {
        .name = "rbdname",
        .lname = "rbd-luks engine rbdname",
        .type = FIO_OPT_STR_STORE,
        .help = "Name of the LUKS-encrypted RBD image",
        .off1 = offsetof(struct rbd_luks_options, rbd_name),
        .category = FIO_OPT_C_ENGINE,
        .group = FIO_OPT_G_RBD,
    },
    {
        .name = "pool",
        .lname = "rbd-luks engine pool",
        .type = FIO_OPT_STR_STORE,
        .help = "Name of the pool hosting the image",
        .off1 = offsetof(struct rbd_luks_options, pool_name),
        .def = "rbd",
        .category = FIO_OPT_C_ENGINE,
        .group = FIO_OPT_G_RBD,
    },
    {
        .name = "clientname",
        .lname = "rbd-luks engine clientname",
        .type = FIO_OPT_STR_STORE,
        .help = "Name of the ceph client to access the image (without 'client.')",
        .off1 = offsetof(struct rbd_luks_options, client_name),
        .category = FIO_OPT_C_ENGINE,
        .group = FIO_OPT_G_RBD,
    },
    {
        .name = "passphrase_file",
        .lname = "rbd-luks engine passphrase file",
        .type = FIO_OPT_STR_STORE,
        .help = "File holding the passphrase, its bytes exactly as rbd-luks --passphrase-file takes them; "
                "default: the key the image metadata refers to",
        .off1 = offsetof(struct rbd_luks_options, passphrase_file),
        .category = FIO_OPT_C_ENGINE,
        .group = FIO_OPT_G_RBD,
    },
    {
        .name = NULL,
    },
};

struct rbd_luks_data;

/* Per io_u; also the completion's argument. */
struct rbd_luks_iou {
  struct io_u* io_u;
  struct rbd_luks_data* data;
  struct rbd_luks_iou* next; /* in the completed list */
};

struct rbd_luks_data {
  rados_t cluster;
  rados_ioctx_t io_ctx;
  rbd_luks_image_t image;

  /* Completed io_us not yet reaped, oldest first: callbacks append, getevents takes. */
  pthread_mutex_t lock;
  pthread_cond_t completed_cond; /* on CLOCK_MONOTONIC, for getevents' timeout */
  struct rbd_luks_iou* completed_head;
  struct rbd_luks_iou* completed_tail;
  unsigned int nr_completed;

  /* What the last getevents reaped, for event(). */
  struct io_u** events;
  unsigned int max_events;
};

/* The description of errno value e: strerror is not thread-safe, and jobs are threads. */
static const char* error_text(int e) {
  const char* text = strerrordesc_np(e);

  return text ? text : "unknown error";
}

/* fio finds an external engine by this symbol's name. */
extern struct ioengine_ops ioengine __attribute__((visibility("default")));

/*
 * This engine was compiled against one fio's headers but runs inside whichever fio loads it. Facts
 * that only the running binary knows catch a build against other headers (another fio version or
 * configuration) before a field at a wrong offset is written: fio put this very ops structure into
 * td->io_ops, and td sits in fio's job array at its thread number, which from the second job on
 * also checks sizeof(struct thread_data). rbd_luks_io_u_init checks struct io_u likewise.
 */
static bool thread_data_layout_matches(struct thread_data* td) {
  const unsigned int n = td->thread_number;

  return td->io_ops == &ioengine && n >= 1 && n <= thread_number && tnumber_to_td(n - 1) == td;
}

static void report_layout_mismatch(void) {
  log_err(
      "rbd_luks_fio: this engine was built against other fio headers than those of the running fio (%s); "
      "rebuild it against this fio's source (deploy/fetch-fio-source.sh)\n",
      fio_version_string);
}

/* The job's engine data, made by setup or init, whichever fio calls first. NULL after log_err. */
static struct rbd_luks_data* job_data(struct thread_data* td) {
  struct rbd_luks_data* d = td->io_ops_data;
  pthread_condattr_t attr;

  if (d) return d;
  if (!thread_data_layout_matches(td)) {
    report_layout_mismatch();
    return NULL;
  }
  d = calloc(1, sizeof(*d));
  if (d) {
    d->max_events = td->o.iodepth;
    d->events = calloc(d->max_events, sizeof(struct io_u*));
  }
  if (!d || !d->events) {
    free(d);
    log_err("rbd_luks_fio: out of memory\n");
    return NULL;
  }
  pthread_mutex_init(&d->lock, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&d->completed_cond, &attr);
  pthread_condattr_destroy(&attr);
  td->io_ops_data = d;
  return d;
}

/*
 * Reads the passphrase in path into buf (MAX_PASSPHRASE + 1 bytes): the file's exact bytes, as
 * rbd-luks --passphrase-file and cryptsetup --key-file take them, so one file opens the volume
 * everywhere (a key file of random bytes may well end in a newline byte). Pipes work too. Returns
 * its length, or -1 after log_err.
 */
static ssize_t read_passphrase(const char* path, char* buf) {
  size_t len = 0;
  ssize_t r = 1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd < 0) {
    log_err("rbd_luks_fio: cannot open passphrase_file %s: %s\n", path, error_text(errno));
    return -1;
  }
  while (r != 0 && len <= MAX_PASSPHRASE) {
    r = read(fd, buf + len, MAX_PASSPHRASE + 1 - len);
    if (r < 0 && errno != EINTR) {
      log_err("rbd_luks_fio: cannot read passphrase_file %s: %s\n", path, error_text(errno));
      close(fd);
      return -1;
    }
    if (r > 0) len += (size_t)r;
  }
  close(fd);
  if (len > MAX_PASSPHRASE) {
    log_err("rbd_luks_fio: passphrase_file %s is longer than %d bytes\n", path, MAX_PASSPHRASE);
    return -1;
  }
  return (ssize_t)len;
}

/* Says why opening the image failed, in librbd_luks's words (which never include a key). */
static void report_open_error(const struct rbd_luks_options* o, int r) {
  const char* why = rbd_luks_last_error();

  log_err("rbd_luks_fio: cannot open image %s/%s with %s%s: %s%s%s%s\n", o->pool_name, o->rbd_name,
          o->passphrase_file ? "the passphrase in " : "the key its metadata refers to",
          o->passphrase_file ? o->passphrase_file : "", why, why[0] ? " (" : "", error_text(-r), why[0] ? ")" : "");
}

static int open_image(const struct rbd_luks_options* o, struct rbd_luks_data* d) {
  char passphrase[MAX_PASSPHRASE + 1];
  ssize_t len;
  int r;

  if (!o->passphrase_file) {
    r = rbd_luks_open_with_stored_key(d->io_ctx, o->rbd_name, NULL, 0, &d->image);
  } else {
    len = read_passphrase(o->passphrase_file, passphrase);
    if (len >= 0) r = rbd_luks_open(d->io_ctx, o->rbd_name, NULL, passphrase, (size_t)len, &d->image);
    /* Also after a failed read, which may have read a part. */
    explicit_bzero(passphrase, sizeof(passphrase));
    if (len < 0) return -EINVAL;
  }
  if (r < 0) report_open_error(o, r);
  return r;
}

/* Connects and opens the image, as fio's rbd engine does, once per job. 0, or 1 after log_err. */
static int connect_and_open(struct thread_data* td, struct rbd_luks_data* d) {
  struct rbd_luks_options* o = td->eo;
  int r;

  if (d->image) return 0;
  if (!o->rbd_name) {
    log_err("rbd_luks_fio: rbdname must be provided\n");
    return 1;
  }
  if (o->cluster_name) {
    /* rados_create2 takes a full type.id name; it does not prepend "client." as rados_create does. */
    char* name = NULL;

    if (o->client_name && !strchr(o->client_name, '.') && asprintf(&name, "client.%s", o->client_name) < 0) {
      log_err("rbd_luks_fio: out of memory\n");
      return 1;
    }
    r = rados_create2(&d->cluster, o->cluster_name, name ? name : o->client_name, 0);
    free(name);
  } else {
    r = rados_create(&d->cluster, o->client_name);
  }
  if (r < 0) {
    log_err("rbd_luks_fio: rados_create failed: %s\n", error_text(-r));
    return 1;
  }
  r = rados_conf_read_file(d->cluster, NULL);
  if (r < 0) {
    log_err("rbd_luks_fio: cannot read the ceph configuration: %s\n", error_text(-r));
    return 1;
  }
  r = rados_conf_parse_env(d->cluster, NULL); /* CEPH_ARGS, as the rbd command line reads it */
  if (r < 0) {
    log_err("rbd_luks_fio: cannot parse CEPH_ARGS: %s\n", error_text(-r));
    return 1;
  }
  r = rados_connect(d->cluster);
  if (r < 0) {
    log_err("rbd_luks_fio: cannot connect to the ceph cluster: %s\n", error_text(-r));
    return 1;
  }
  r = rados_ioctx_create(d->cluster, o->pool_name, &d->io_ctx);
  if (r < 0) {
    log_err("rbd_luks_fio: cannot open pool %s: %s\n", o->pool_name, error_text(-r));
    return 1;
  }
  if (td->o.odirect && rados_conf_set(d->cluster, "rbd_cache", "false") < 0) {
    log_info("rbd_luks_fio: failed to disable the RBD in-memory cache\n");
  }
  if (open_image(o, d) < 0) return 1;
  /* librbd's cache stays in writethrough mode until the first flush; rbd.c flushes too. */
  if (!td->o.odirect && rbd_luks_flush(d->image) < 0) log_info("rbd_luks_fio: failed to issue the initial flush\n");
  return 0;
}

static void rbd_luks_cleanup(struct thread_data* td) {
  struct rbd_luks_data* d = td->io_ops_data;

  if (!d) return;
  /* rbd_luks_close waits for the requests in flight and their callbacks, which use d; it flushes
   * too, and a failure there means writes fio saw complete are not durable. */
  if (d->image) {
    const int r = rbd_luks_close(d->image);
    if (r < 0) log_err("rbd_luks_fio: closing the image failed: %s (%s)\n", error_text(-r), rbd_luks_last_error());
  }
  if (d->io_ctx) rados_ioctx_destroy(d->io_ctx);
  if (d->cluster) rados_shutdown(d->cluster);
  pthread_cond_destroy(&d->completed_cond);
  pthread_mutex_destroy(&d->lock);
  free(d->events);
  free(d);
  td->io_ops_data = NULL;
}

/*
 * Runs in fio's main thread before the job starts (unless create_serialize=0): opens the image to
 * learn its size and keeps it open for the job, which must therefore be a thread of this process.
 */
static int rbd_luks_setup(struct thread_data* td) {
  struct rbd_luks_options* o = td->eo;
  struct rbd_luks_data* d;
  uint64_t size;
  int r;

  d = job_data(td);
  if (!d) return 1;
  td->o.use_thread = 1;
  if (connect_and_open(td, d)) goto failed;
  r = rbd_luks_get_size(d->image, &size);
  if (r < 0) {
    log_err("rbd_luks_fio: cannot get the size of %s/%s: %s (%s)\n", o->pool_name, o->rbd_name, error_text(-r),
            rbd_luks_last_error());
    goto failed;
  }
  if (size == 0) {
    log_err("rbd_luks_fio: image size should be larger than zero\n");
    goto failed;
  }
  if (!td->files_index) {
    add_file(td, td->o.filename ? td->o.filename : "rbd-luks", 0, 0);
    if (!td->o.nr_files) td->o.nr_files = 1;
    td->o.open_files++;
  }
  td->files[0]->real_file_size = size;
  return 0;

failed:
  rbd_luks_cleanup(td);
  return 1;
}

static int rbd_luks_init(struct thread_data* td) {
  struct rbd_luks_data* d = job_data(td);

  return d ? connect_and_open(td, d) : 1;
}

static void rbd_luks_complete(rbd_luks_completion_t c, void* arg) {
  struct rbd_luks_iou* iou = arg;
  struct rbd_luks_data* d = iou->data;
  struct io_u* io_u = iou->io_u;
  const ssize_t ret = rbd_luks_aio_get_return_value(c);

  rbd_luks_aio_release(c);
  /* Reads return their full length or fail; librbd_luks never completes a request in part. */
  if (ret < 0) {
    io_u->error = (int)-ret;
    io_u->resid = io_u->xfer_buflen;
  } else {
    io_u->error = 0;
  }
  iou->next = NULL;
  pthread_mutex_lock(&d->lock);
  if (d->completed_tail)
    d->completed_tail->next = iou;
  else
    d->completed_head = iou;
  d->completed_tail = iou;
  d->nr_completed++;
  pthread_cond_signal(&d->completed_cond);
  pthread_mutex_unlock(&d->lock);
}

static enum fio_q_status rbd_luks_queue(struct thread_data* td, struct io_u* io_u) {
  struct rbd_luks_data* d = td->io_ops_data;
  struct rbd_luks_iou* iou = io_u->engine_data;
  rbd_luks_completion_t c;
  int r;

  fio_ro_check(td, io_u);
  iou->data = d;
  r = rbd_luks_aio_create_completion(iou, rbd_luks_complete, &c);
  if (r < 0) goto failed;
  switch (io_u->ddir) {
    case DDIR_READ:
      r = rbd_luks_aio_read(d->image, io_u->offset, io_u->xfer_buflen, io_u->xfer_buf, c, 0);
      break;
    case DDIR_WRITE:
      r = rbd_luks_aio_write(d->image, io_u->offset, io_u->xfer_buflen, io_u->xfer_buf, c, 0);
      break;
    case DDIR_TRIM:
      r = rbd_luks_aio_discard(d->image, io_u->offset, io_u->xfer_buflen, c);
      break;
    case DDIR_SYNC:
    case DDIR_DATASYNC:
      /* A flush makes data and metadata durable alike. */
      r = rbd_luks_aio_flush(d->image, c);
      break;
    default:
      r = -EINVAL;
      break;
  }
  if (r < 0) {
    rbd_luks_aio_release(c);
    goto failed;
  }
  return FIO_Q_QUEUED;

failed:
  io_u->error = -r;
  return FIO_Q_COMPLETED;
}

static int rbd_luks_getevents(struct thread_data* td, unsigned int min, unsigned int max, const struct timespec* t) {
  struct rbd_luks_data* d = td->io_ops_data;
  struct timespec deadline;
  unsigned int n = 0;

  if (t) {
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += t->tv_sec;
    deadline.tv_nsec += t->tv_nsec;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
  }
  pthread_mutex_lock(&d->lock);
  while (d->nr_completed < min) {
    if (!t)
      pthread_cond_wait(&d->completed_cond, &d->lock);
    else if (pthread_cond_timedwait(&d->completed_cond, &d->lock, &deadline) == ETIMEDOUT)
      break;
  }
  while (d->completed_head && n < max && n < d->max_events) {
    struct rbd_luks_iou* iou = d->completed_head;

    d->completed_head = iou->next;
    if (!d->completed_head) d->completed_tail = NULL;
    d->nr_completed--;
    d->events[n++] = iou->io_u;
  }
  pthread_mutex_unlock(&d->lock);
  return (int)n;
}

static struct io_u* rbd_luks_event(struct thread_data* td, int event) {
  struct rbd_luks_data* d = td->io_ops_data;

  return d->events[event];
}

/* The image is opened per job by setup or init, whatever the number of files. */
static int rbd_luks_open_file(struct thread_data* td, struct fio_file* f) {
  (void)td;
  (void)f;
  return 0;
}

static int rbd_luks_io_u_init(struct thread_data* td, struct io_u* io_u) {
  struct rbd_luks_iou* iou;

  /* fio listed io_u in io_u_all at its index just before this call. */
  if (io_u->index >= td->io_u_all.nr || td->io_u_all.io_us[io_u->index] != io_u) {
    report_layout_mismatch();
    return 1;
  }
  iou = calloc(1, sizeof(*iou));
  if (!iou) return 1;
  iou->io_u = io_u;
  io_u->engine_data = iou;
  return 0;
}

static void rbd_luks_io_u_free(struct thread_data* td, struct io_u* io_u) {
  (void)td;
  free(io_u->engine_data);
  io_u->engine_data = NULL;
}

struct ioengine_ops ioengine = {
    .name = "rbd_luks",
    .version = FIO_IOOPS_VERSION,
    /* No local file is involved: without this, fio would lay out a local file named after the job
     * when size= exceeds the image, as it does with the rbd engine. */
    .flags = FIO_DISKLESSIO,
    .setup = rbd_luks_setup,
    .init = rbd_luks_init,
    .queue = rbd_luks_queue,
    .getevents = rbd_luks_getevents,
    .event = rbd_luks_event,
    .cleanup = rbd_luks_cleanup,
    .open_file = rbd_luks_open_file,
    .io_u_init = rbd_luks_io_u_init,
    .io_u_free = rbd_luks_io_u_free,
    .options = options,
    .option_struct_size = sizeof(struct rbd_luks_options),
};
