// Mounting a RawFileSystem: open /dev/fuse, mount(2) a "fuse.kurve" file system on it, start the
// session and wait for INIT. Also: the mount's connection id and a plain detach-unmount.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Errno, FsError, errnoName } from '../../common/errno';
import * as ffi from './ffi';
import type { MountOptions, RawFileSystem } from './raw-fs';
import { FuseSession } from './session';

export type ResolvedMountOptions = Required<MountOptions>;

/** Defaults in one place; the CLI, config file and env all feed this. */
export function resolveMountOptions(o: MountOptions = {}): ResolvedMountOptions {
  const maxWrite = o.maxWrite ?? 1 << 20;
  if (o.pollMicros !== undefined && !(o.pollMicros >= 0 && o.pollMicros <= 10_000)) {
    throw new FsError(Errno.EINVAL, `pollMicros must be between 0 and 10000 µs, got ${o.pollMicros}`);
  }
  if (o.slowMs !== undefined && !(o.slowMs >= 0)) throw new FsError(Errno.EINVAL, `slowMs must be 0 or more, got ${o.slowMs}`);
  if (!Number.isInteger(maxWrite) || maxWrite < 4096 || maxWrite > 1 << 20 || maxWrite % 4096 !== 0) {
    throw new FsError(Errno.EINVAL, `maxWrite must be a multiple of 4096 between 4 KiB and 1 MiB, got ${maxWrite}`);
  }
  return {
    allowOther: o.allowOther ?? false,
    defaultPermissions: o.defaultPermissions ?? true,
    passthrough: o.passthrough ?? false,
    maxWrite,
    maxReadahead: o.maxReadahead ?? 1 << 20,
    fsname: o.fsname ?? 'kurve',
    subtype: o.subtype ?? 'kurve',
    readOnly: o.readOnly ?? false,
    loop: o.loop ?? (process.env.KURVE_FUSE_LOOP === 'epoll' ? 'epoll' : 'uv-poll'),
    pollMicros: o.pollMicros ?? 0,
    slowMs: o.slowMs ?? 0,
    onSlow: o.onSlow ?? ((): void => undefined),
  };
}

/** How long mount() waits for the kernel's INIT and the file system's init(). */
const INIT_TIMEOUT_MS = 10_000;

/**
 * Mounts `rawFs` on `mountpoint` (an existing directory) and serves it from this event loop.
 * Needs CAP_SYS_ADMIN. Never touch the mount point synchronously from this process: the request
 * would wait for an event loop that is blocked on it.
 */
export async function mount(rawFs: RawFileSystem, mountpoint: string, options: MountOptions = {}): Promise<FuseSession> {
  const o = resolveMountOptions(options);
  const target = path.resolve(mountpoint);
  let st: fs.Stats;
  try {
    st = fs.statSync(target);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const hint = e.code === 'ENOTCONN' ? ' (a dead FUSE mount: run `umount -l` on it)' : '';
    throw new FsError(-(e.errno ?? -Errno.EIO), `mount point ${target}: ${e.code ?? e.message}${hint}`);
  }
  if (!st.isDirectory()) throw new FsError(Errno.ENOTDIR, `mount point ${target} is not a directory`);

  const fd = ffi.openFuseDevice();
  const data = [
    `fd=${fd}`, 'rootmode=40000', `user_id=${process.getuid?.() ?? 0}`, `group_id=${process.getgid?.() ?? 0}`,
    ...(o.allowOther ? ['allow_other'] : []),
    ...(o.defaultPermissions ? ['default_permissions'] : []),
    `max_read=${o.maxWrite}`,
  ].join(',');
  const flags = ffi.MS_NOSUID | ffi.MS_NODEV | (o.readOnly ? ffi.MS_RDONLY : 0);
  try {
    ffi.sysMount(o.fsname, target, `fuse.${o.subtype}`, flags, data);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  const session = new FuseSession(rawFs, { fd, mountpoint: target, options: o });
  session.connectionId = connectionIdOf(target) ?? 0;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      session.start(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new FsError(Errno.ETIMEDOUT, `no FUSE INIT within ${INIT_TIMEOUT_MS} ms`)), INIT_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    await session.unmount();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return session;
}

/**
 * The kernel's device number of the FUSE mount at `mountpoint` ((major << 20) | minor, from
 * /proc/self/mountinfo, without touching the mount itself): the `connection` field of the fuse
 * tracepoints and the name of its /sys/fs/fuse/connections directory.
 */
export function connectionIdOf(mountpoint: string): number | undefined {
  return connectionIdIn(fs.readFileSync('/proc/self/mountinfo', 'utf8'), mountpoint);
}

/** connectionIdOf over a given mountinfo text. */
export function connectionIdIn(mountinfo: string, mountpoint: string): number | undefined {
  let found: number | undefined;
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f.length < 10) continue;
    const sep = f.indexOf('-');
    if (unescapeMountPath(f[4]) !== mountpoint || !f[sep + 1]?.startsWith('fuse')) continue;
    const [major, minor] = f[2].split(':').map(Number);
    found = major * 2 ** 20 + minor; // the last (topmost) mount on that path wins
  }
  return found;
}

function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Detach-unmounts a path (for `kurve umount` and recovery of a dead daemon's mount). */
export function unmountPath(mountpoint: string): void {
  const errno = ffi.sysUmount(path.resolve(mountpoint), ffi.MNT_DETACH);
  if (errno !== 0) throw new FsError(errno, `umount ${mountpoint}: ${errnoName(errno)}`);
}

/**
 * Sets the mount's readahead (/sys/class/bdi/MAJOR:MINOR/read_ahead_kb). The kernel starts it
 * at INIT's max_readahead; larger sequential reads can help a remote-backed file system.
 */
export function setReadAhead(connectionId: number, bytes: number): void {
  const bdi = `/sys/class/bdi/${Math.floor(connectionId / 2 ** 20)}:${connectionId % 2 ** 20}/read_ahead_kb`;
  try {
    fs.writeFileSync(bdi, String(Math.ceil(bytes / 1024)));
  } catch (err) {
    throw new FsError(-((err as NodeJS.ErrnoException).errno ?? -Errno.EIO), `cannot set readahead via ${bdi}: ${(err as Error).message}`);
  }
}
