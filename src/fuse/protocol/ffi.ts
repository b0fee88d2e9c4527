// The only FUSE code that calls libc through koffi: mount(2), umount2(2) and the /dev/fuse ioctls
// (passthrough backing files, clone). Every call reports failure as FsError with the real errno.
import * as fs from 'node:fs';
import koffi from 'koffi';
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
    throw new FsError(-(e.errno ?? -5), `open /dev/fuse: ${e.message}`);
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
