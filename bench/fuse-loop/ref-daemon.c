/* Reference point for bench/fuse-loop: the same one-file file system as run.ts's OneFileFs,
 * served by a single-threaded C loop with blocking reads on /dev/fuse (no libfuse). Run in the
 * same benchmark as the Node session so a noisy machine affects both alike.
 * Usage: ref-daemon MOUNTPOINT  (prints "ready" once INIT was answered; SIGTERM to stop). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static const char *mnt;
static void stop(int sig) {
  (void)sig;
  umount2(mnt, MNT_DETACH);
  _exit(0);
}

static void fill_attr(struct fuse_attr *a, uint64_t ino) {
  memset(a, 0, sizeof *a);
  a->ino = ino;
  a->mode = ino == 1 ? 040755 : 0100644;
  a->nlink = ino == 1 ? 2 : 1;
  a->size = ino == 1 ? 0 : 4096;
  a->blocks = a->size / 512;
  a->atime = a->mtime = a->ctime = 1700000000;
  a->blksize = 4096;
}

static void reply(int fd, uint64_t unique, int error, const void *body, size_t len) {
  char out[sizeof(struct fuse_out_header) + 256];
  struct fuse_out_header *h = (struct fuse_out_header *)out;
  h->len = sizeof *h + len;
  h->error = error;
  h->unique = unique;
  if (len) memcpy(out + sizeof *h, body, len);
  if (write(fd, out, h->len) < 0 && errno != ENOENT) perror("write");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s MOUNTPOINT\n", argv[0]);
    return 2;
  }
  mnt = argv[1];
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) { perror("open /dev/fuse"); return 1; }
  char opts[128];
  snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0,default_permissions", fd);
  if (mount("kurve-ref", mnt, "fuse.kurve-ref", MS_NOSUID | MS_NODEV, opts) != 0) { perror("mount"); return 1; }
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  static char buf[(1 << 20) + 8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR || errno == ENOENT) continue;
      return errno == ENODEV ? 0 : 1;
    }
    struct fuse_in_header *in = (struct fuse_in_header *)buf;
    const char *body = buf + sizeof *in;
    switch (in->opcode) {
    case FUSE_INIT: {
      struct fuse_init_out o;
      memset(&o, 0, sizeof o);
      o.major = 7;
      o.minor = 38;
      o.max_readahead = 1 << 20;
      o.flags = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES;
      o.max_background = 64;
      o.congestion_threshold = 48;
      o.max_write = 1 << 20;
      o.time_gran = 1;
      o.max_pages = 256;
      reply(fd, in->unique, 0, &o, sizeof o);
      printf("ready\n");
      fflush(stdout);
      break;
    }
    case FUSE_LOOKUP: {
      if (strcmp(body, "f") != 0) { reply(fd, in->unique, -ENOENT, NULL, 0); break; }
      struct fuse_entry_out e;
      memset(&e, 0, sizeof e);
      e.nodeid = 2;
      e.entry_valid = 3600;
      fill_attr(&e.attr, 2);
      reply(fd, in->unique, 0, &e, sizeof e);
      break;
    }
    case FUSE_GETATTR: {
      struct fuse_attr_out a;
      memset(&a, 0, sizeof a);
      fill_attr(&a.attr, in->nodeid);
      reply(fd, in->unique, 0, &a, sizeof a);
      break;
    }
    case FUSE_FORGET:
    case FUSE_BATCH_FORGET:
    case FUSE_INTERRUPT:
      break;
    default:
      reply(fd, in->unique, -ENOSYS, NULL, 0);
    }
  }
}
