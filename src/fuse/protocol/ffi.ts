// The only FUSE code that calls libc through koffi: mount(2), umount2(2) and the /dev/fuse ioctls
// (passthrough backing files, clone). Every call reports failure as FsError with the real errno.
import * as fs from 'node:fs';
import koffi, { type TypeObject } from 'koffi';
import { FsError, errnoName } from '../../common/errno';
import { BACKING_MAP_SIZE } from './wire';

export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MNT_FORCE = 1;
export const MNT_DETACH = 2;

/** _IOR(229, 0, uint32_t) */
export const FUSE_DEV_IOC_CLONE = 0x8004e500;
/** _IOW(229, 1, struct fuse_backing_map) */
export const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
/** _IOW(229, 2, uint32_t) */
export const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;

interface Libc {
  mount: (source: string, target: string, fstype: string, flags: number, data: string) => number;
  umount2: (target: string, flags: number) => number;
  ioctl: (fd: number, request: number, arg: Buffer) => number;
  read: (fd: number, buf: Buffer, count: number) => number;
  write: (fd: number, buf: Buffer, count: number) => number;
}

let libc: Libc | undefined;
function c(): Libc {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    libc = {
      mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
      umount2: lib.func('int umount2(const char *target, int flags)'),
      // Declared with a fixed third argument: same calling convention as the variadic one for
      // integer/pointer arguments on x86_64 and aarch64.
      ioctl: lib.func('int ioctl(int fd, unsigned long request, void *arg)'),
      read: lib.func('long read(int fd, void *buf, size_t count)'),
      write: lib.func('long write(int fd, void *buf, size_t count)'),
    };
  }
  return libc;
}

function fail(call: string, detail: string): never {
  const errno = koffi.errno();
  throw new FsError(errno, `${call}(${detail}) failed: ${errnoName(errno)}`);
}

/**
 * read(2) into buf: bytes read, or -errno. The request loop's hot path: an empty non-blocking
 * /dev/fuse answers EAGAIN once per wake-up, and fs.readSync turns that into a thrown Error
 * (~6.7 µs here) where this costs ~0.4 µs.
 */
export function devRead(fd: number, buf: Buffer): number {
  const n = c().read(fd, buf, buf.length);
  return n >= 0 ? n : -koffi.errno();
}

/** write(2) of buf[0, len): bytes written, or -errno (ENOENT = the request was interrupted). */
export function devWrite(fd: number, buf: Buffer, len: number): number {
  const n = c().write(fd, buf, len);
  return n >= 0 ? n : -koffi.errno();
}

/** /dev/fuse, non-blocking: the session reads it from the event loop when epoll says readable. */
export function openFuseDevice(): number {
  try {
    return fs.openSync('/dev/fuse', fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // Kurve mounts with mount(2) itself (no setuid fusermount3): that takes root (CAP_SYS_ADMIN).
    const hint = e.code === 'EACCES' || e.code === 'EPERM' ? ' (mounting a Kurve file system needs root: run it as root or with sudo)'
      : e.code === 'ENOENT' ? ' (no FUSE device: load the fuse module, `modprobe fuse`)' : '';
    throw new FsError(-(e.errno ?? -5), `open /dev/fuse: ${e.message}${hint}`);
  }
}

export function sysMount(source: string, target: string, fstype: string, flags: number, data: string): void {
  if (c().mount(source, target, fstype, flags, data) !== 0) fail('mount', `${target}, ${fstype}`);
}

/** umount2; returns the errno instead of throwing (EINVAL = not a mount point any more). */
export function sysUmount(target: string, flags: number): number {
  return c().umount2(target, flags) === 0 ? 0 : koffi.errno();
}

/** Registers fd as a passthrough backing file; returns the backing id. */
export function backingOpen(devFd: number, fd: number): number {
  const map = Buffer.alloc(BACKING_MAP_SIZE);
  map.writeInt32LE(fd, 0); // flags 0 = FUSE_BACKING_TYPE_PASSTHROUGH
  const id = c().ioctl(devFd, FUSE_DEV_IOC_BACKING_OPEN, map);
  if (id < 0) fail('ioctl', `FUSE_DEV_IOC_BACKING_OPEN fd ${fd}`);
  return id;
}

export function backingClose(devFd: number, backingId: number): void {
  const arg = Buffer.alloc(4);
  arg.writeUInt32LE(backingId, 0);
  if (c().ioctl(devFd, FUSE_DEV_IOC_BACKING_CLOSE, arg) < 0) fail('ioctl', `FUSE_DEV_IOC_BACKING_CLOSE ${backingId}`);
}

/** A new /dev/fuse fd on the same connection (for a reader on another thread). */
export function cloneDevice(devFd: number): number {
  const fd = openFuseDevice();
  const arg = Buffer.alloc(4);
  arg.writeUInt32LE(devFd, 0);
  if (c().ioctl(fd, FUSE_DEV_IOC_CLONE, arg) < 0) {
    const errno = koffi.errno();
    fs.closeSync(fd);
    throw new FsError(errno, `ioctl(FUSE_DEV_IOC_CLONE) failed: ${errnoName(errno)}`);
  }
  return fd;
}

// ---- readiness from Node's own event loop ------------------------------------------------------

/** A uv_poll_t on Node's default libuv loop (libuv is exported by the node binary). */
export interface LoopPoll {
  stop(): void;
}

const UV_POLL = 8;
const UV_READABLE = 1;
interface UvApi {
  loop: unknown;
  handleSize: number;
  init: (loop: unknown, handle: unknown, fd: number) => number;
  start: (handle: unknown, events: number, cb: unknown) => number;
  stop: (handle: unknown) => number;
  close: (handle: unknown, cb: null) => void;
  cbType: TypeObject;
}
let uv: UvApi | undefined;
function uvApi(): UvApi {
  if (!uv) {
    const self = koffi.load(null);
    // Anonymous prototype: koffi type names are process-wide, and this module may be loaded
    // more than once in a process (jest loads it per test file).
    const cbType = koffi.pointer(koffi.proto('void (void *handle, int status, int events)'));
    uv = {
      loop: self.func('void *uv_default_loop()')(),
      handleSize: Number(self.func('size_t uv_handle_size(int type)')(UV_POLL)),
      init: self.func('int uv_poll_init(void *loop, void *handle, int fd)'),
      start: self.func('uv_poll_start', 'int', ['void *', 'int', cbType]),
      stop: self.func('int uv_poll_stop(void *handle)'),
      close: self.func('void uv_close(void *handle, void *cb)'),
      cbType,
    };
  }
  return uv;
}

/**
 * Calls onReady(status) on the event loop whenever fd is readable (status < 0: libuv saw an
 * error, e.g. POLLERR once the connection is gone). Unlike npm `epoll`, no watcher thread hands
 * the event over: libuv's own epoll_wait wakes the loop, one thread hop less per request.
 */
export function pollOnLoop(fd: number, onReady: (status: number) => void): LoopPoll {
  const u = uvApi();
  // Never freed: libuv may touch the handle until its close completes, and it is ~160 bytes
  // once per mount.
  const handle = koffi.alloc('uint8_t', u.handleSize);
  const cb = koffi.register((_h: unknown, status: number) => onReady(status), u.cbType);
  let rc = u.init(u.loop, handle, fd);
  if (rc === 0) rc = u.start(handle, UV_READABLE, cb);
  if (rc !== 0) {
    koffi.unregister(cb);
    throw new FsError(-rc, `uv_poll on fd ${fd} failed: ${errnoName(-rc)}`);
  }
  let stopped = false;
  return {
    stop: () => {
      if (stopped) return;
      stopped = true;
      u.stop(handle);
      u.close(handle, null);
      // libuv calls nothing for a stopped poll; free the trampoline once we are surely out of it
      // (stop() may run inside the callback itself).
      setImmediate(() => koffi.unregister(cb));
    },
  };
}
