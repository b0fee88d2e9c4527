// The benchmark baseline: a straightforward passthrough file system on npm `fuse-native` 2.2.6
// (libfuse 2 high-level, path-based API), storing data in a backing directory like passthrough.c.
// Run as its own process: node dist/bench/baselines/fuse-native-fs.js --backing DIR --mount DIR
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

/** The slice of fuse-native's API this file uses (the package ships no types). */
interface FuseCtor {
  new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>): FuseInstance;
  readonly ENOENT: number;
}
interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
type Cb = (res: number, ...rest: unknown[]) => void;

/**
 * fuse-native's prebuilt addon links libfuse.so.2, which Debian 12 does not install by default
 * (only fuse3). The package ships the library itself; when the system has none, point the child's
 * LD_LIBRARY_PATH at a temp dir holding libfuse.so.2 -> the shipped copy. Returns extra env vars.
 */
export function fuseNativeEnv(tmpDir: string): NodeJS.ProcessEnv {
  const systemLib = ['/usr/lib/x86_64-linux-gnu/libfuse.so.2', '/lib/x86_64-linux-gnu/libfuse.so.2', '/usr/lib/libfuse.so.2'];
  if (systemLib.some((p) => fs.existsSync(p))) return {};
  const pkg = path.dirname(require.resolve('fuse-native/package.json'));
  const shipped = path.join(pkg, 'prebuilds', `${os.platform()}-${os.arch()}`, 'libfuse.so');
  if (!fs.existsSync(shipped)) throw new Error(`fuse-native ships no libfuse for ${os.platform()}-${os.arch()} and libfuse.so.2 is not installed`);
  const libDir = path.join(tmpDir, 'fuse-native-lib');
  fs.mkdirSync(libDir, { recursive: true });
  const link = path.join(libDir, 'libfuse.so.2');
  if (!fs.existsSync(link)) fs.symlinkSync(shipped, link);
  return { LD_LIBRARY_PATH: [libDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') };
}

function errnoOf(err: unknown): number {
  const code = (err as NodeJS.ErrnoException).code;
  const n = code ? (os.constants.errno as Record<string, number>)[code] : undefined;
  return -(n ?? os.constants.errno.EIO);
}

/** Passthrough ops: every path maps to the same path under `backing`; sync calls on the main thread. */
function passthroughOps(backing: string): Record<string, unknown> {
  const p = (rel: string): string => path.join(backing, rel);
  const wrap = (fn: () => void, cb: Cb): void => {
    try { fn(); cb(0); } catch (err) { cb(errnoOf(err)); }
  };
  const statOf = (st: fs.Stats): Record<string, unknown> => ({
    mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, dev: st.dev, nlink: st.nlink, ino: st.ino,
    rdev: st.rdev, blksize: st.blksize, blocks: st.blocks, atime: st.atime, mtime: st.mtime, ctime: st.ctime,
  });
  return {
    getattr: (rel: string, cb: Cb) => {
      try { cb(0, statOf(fs.lstatSync(p(rel)))); } catch (err) { cb(errnoOf(err)); }
    },
    fgetattr: (rel: string, fd: number, cb: Cb) => {
      try { cb(0, statOf(fs.fstatSync(fd))); } catch (err) { cb(errnoOf(err)); }
    },
    readdir: (rel: string, cb: Cb) => {
      try { cb(0, fs.readdirSync(p(rel))); } catch (err) { cb(errnoOf(err)); }
    },
    open: (rel: string, flags: number, cb: Cb) => {
      try { cb(0, fs.openSync(p(rel), flags)); } catch (err) { cb(errnoOf(err)); }
    },
    create: (rel: string, mode: number, cb: Cb) => {
      try { cb(0, fs.openSync(p(rel), fs.constants.O_CREAT | fs.constants.O_RDWR | fs.constants.O_TRUNC, mode)); } catch (err) { cb(errnoOf(err)); }
    },
    read: (rel: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      try { cb(fs.readSync(fd, buf, 0, len, pos)); } catch (err) { cb(errnoOf(err)); }
    },
    write: (rel: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      try { cb(fs.writeSync(fd, buf, 0, len, pos)); } catch (err) { cb(errnoOf(err)); }
    },
    release: (rel: string, fd: number, cb: Cb) => wrap(() => fs.closeSync(fd), cb),
    flush: (_rel: string, _fd: number, cb: Cb) => cb(0),
    fsync: (_rel: string, _datasync: number, fd: number, cb: Cb) => wrap(() => fs.fsyncSync(fd), cb),
    truncate: (rel: string, size: number, cb: Cb) => wrap(() => fs.truncateSync(p(rel), size), cb),
    ftruncate: (rel: string, fd: number, size: number, cb: Cb) => wrap(() => fs.ftruncateSync(fd, size), cb),
    unlink: (rel: string, cb: Cb) => wrap(() => fs.unlinkSync(p(rel)), cb),
    mkdir: (rel: string, mode: number, cb: Cb) => wrap(() => fs.mkdirSync(p(rel), { mode }), cb),
    rmdir: (rel: string, cb: Cb) => wrap(() => fs.rmdirSync(p(rel)), cb),
    rename: (src: string, dst: string, cb: Cb) => wrap(() => fs.renameSync(p(src), p(dst)), cb),
    chmod: (rel: string, mode: number, cb: Cb) => wrap(() => fs.chmodSync(p(rel), mode), cb),
    chown: (rel: string, uid: number, gid: number, cb: Cb) => wrap(() => fs.lchownSync(p(rel), uid, gid), cb),
    utimens: (rel: string, atime: number, mtime: number, cb: Cb) => wrap(() => fs.utimesSync(p(rel), new Date(atime), new Date(mtime)), cb),
    statfs: (_rel: string, cb: Cb) => {
      try {
        const s = fs.statfsSync(backing);
        cb(0, { bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, favail: s.ffree, fsid: 0, flag: 0, namemax: 255 });
      } catch (err) { cb(errnoOf(err)); }
    },
  };
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

function main(): void {
  const backing = arg('--backing');
  const mount = arg('--mount');
  if (!backing || !mount) {
    process.stderr.write('usage: fuse-native-fs --backing DIR --mount DIR [--attr-timeout SECONDS]\n');
    process.exit(2);
  }
  // Loaded here, not at import time, so the harness can import fuseNativeEnv() without libfuse.
  const Fuse = require('fuse-native') as FuseCtor;
  // fuse-native drops numeric 0 options (`if (opts.attrTimeout)`); a string '0' reaches libfuse.
  const timeout = arg('--attr-timeout');
  const opts: Record<string, unknown> = { force: false, mkdir: false, timeout: false };
  if (timeout !== undefined) Object.assign(opts, { attrTimeout: String(timeout), entryTimeout: String(timeout) });
  const fuse = new Fuse(mount, passthroughOps(backing), opts);
  let closing = false;
  const shutdown = (): void => {
    if (closing) return;
    closing = true;
    // fuse-native unmounts with `fusermount` (libfuse 2), absent next to fuse3: detach it ourselves.
    try { execFileSync('umount', ['-l', mount], { stdio: 'ignore' }); } catch { /* already gone */ }
    fuse.unmount(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  fuse.mount((err) => {
    if (err) {
      process.stderr.write(`fuse-native mount failed: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write('ready\n');
  });
}

if (require.main === module) main();
