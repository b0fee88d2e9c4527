// Mount a RawFileSystem in a fresh temp dir for a test, and make sure no mount outlives the test
// file: each mount unmounts (MNT_DETACH) in its cleanup, and an afterAll + process-exit safety
// net detaches anything a failing test left behind.
//
// Never use synchronous fs calls on the mount from the test process: the daemon is this process's
// event loop, so a sync stat would wait forever for itself. Use fs.promises or a child process,
// and never spawn a child with its cwd inside the mount (libuv's chdir between fork and exec
// waits for this event loop, and the forked child holds a copy of the /dev/fuse fd, so the
// connection outlives even this process: only /sys/fs/fuse/connections/N/abort frees it).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connectionIdOf, mount } from '../../src/fuse/protocol/mount';
import type { MountOptions, RawFileSystem } from '../../src/fuse/protocol/raw-fs';
import type { FuseSession } from '../../src/fuse/protocol/session';
import { MNT_DETACH, sysUmount } from '../../src/fuse/protocol/ffi';

export interface TempMount {
  readonly dir: string;
  readonly session: FuseSession;
  /** Path inside the mount. */
  p(...parts: string[]): string;
  cleanup(): Promise<void>;
}

const live = new Set<TempMount>();

export async function mountTemp(rawFs: RawFileSystem, options: MountOptions = {}): Promise<TempMount> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-fuse-'));
  let session: FuseSession;
  try {
    session = await mount(rawFs, dir, options);
  } catch (err) {
    sysUmount(dir, MNT_DETACH);
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const m: TempMount = {
    dir,
    session,
    p: (...parts) => path.join(dir, ...parts),
    cleanup: async () => {
      live.delete(m);
      exitSet.delete(m);
      try {
        await withTimeout(session.unmount(), 5000, `unmount ${dir}`);
      } finally {
        sysUmount(dir, MNT_DETACH);
        // Only remove the directory once nothing is mounted there: a sync rm on a live mount
        // served by this very process would wait for itself forever.
        if (connectionIdOf(dir) === undefined) fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  live.add(m);
  exitSet.add(m);
  return m;
}

export async function unmountAll(): Promise<void> {
  for (const m of [...live]) await m.cleanup().catch(() => undefined);
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Waits until cond() holds (polling), or fails after ms. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// Safety nets: every test file that imports this helper detaches leftovers after its tests, and
// a process exit detaches synchronously whatever is still mounted.
// (Looked up on globalThis: the bench also loads this helper, outside jest and without its types.)
const jestAfterAll = (globalThis as { afterAll?: (fn: () => Promise<void>) => void }).afterAll;
if (typeof jestAfterAll === 'function') jestAfterAll(unmountAll);
// (One process-wide listener, however many test files load this helper.)
const EXIT_HOOK = Symbol.for('kurve.test.mountTempExit');
const g = globalThis as { [EXIT_HOOK]?: Set<TempMount> };
if (!g[EXIT_HOOK]) {
  const all = (g[EXIT_HOOK] = new Set<TempMount>());
  process.once('exit', () => {
    for (const m of all) sysUmount(m.dir, MNT_DETACH);
  });
}
const exitSet = g[EXIT_HOOK];

/**
 * Runs one libc call in a child process (so a mount served by this process can answer it) and
 * returns its result and errno. `proto` is a koffi prototype, e.g.
 * 'int renameat2(int, const char *, int, const char *, unsigned int)'; string args are passed as is.
 */
export async function childLibc(proto: string, args: Array<string | number>, timeoutMs = 10_000): Promise<{ ret: number; errno: number; out?: string }> {
  const { execFile } = await import('node:child_process');
  const script = `
    const koffi = require('koffi');
    const f = koffi.load('libc.so.6').func(${JSON.stringify(proto)});
    const args = ${JSON.stringify(args)};
    const bufSize = args.length && typeof args[args.length - 1] === 'number' && ${JSON.stringify(proto)}.includes('_Out_') ? args[args.length - 1] : 0;
    const out = Buffer.alloc(bufSize);
    const callArgs = bufSize ? [...args.slice(0, -1), out, bufSize] : args;
    const ret = f(...callArgs);
    const errno = ret < 0 ? koffi.errno() : 0;
    process.stdout.write(JSON.stringify({ ret: Number(ret), errno, out: bufSize && ret > 0 ? out.subarray(0, Number(ret)).toString('latin1') : undefined }));
  `;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { cwd: path.resolve(__dirname, '../..'), timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${proto}: ${err.message} ${stderr}`));
      else resolve(JSON.parse(stdout) as { ret: number; errno: number; out?: string });
    });
  });
}
