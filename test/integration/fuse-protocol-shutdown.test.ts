// Shutdown never hangs: unmount() with requests in flight, an external umount, SIGTERM to a
// daemon process, and SIGKILL of a daemon (its mount point must stay recoverable).
import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Errno } from '../../src/common/errno';
import { MNT_DETACH, sysUmount } from '../../src/fuse/protocol/ffi';
import { connectionIdOf } from '../../src/fuse/protocol/mount';
import type { AttrOut, Reply, RequestContext } from '../../src/fuse/protocol/raw-fs';
import { MemFs } from '../helpers/memfs';
import { mountTemp, waitFor, withTimeout } from '../helpers/mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');

/** A MemFs whose getattr of one inode never answers on its own. */
class StuckFs extends MemFs {
  stuck = new Set<number>();
  override getattr(ctx: RequestContext): Reply<AttrOut> {
    if (this.stuck.has(ctx.nodeid)) return new Promise<AttrOut>(() => undefined);
    return super.getattr(ctx);
  }
}

const isMounted = (dir: string): boolean => connectionIdOf(dir) !== undefined;

/** A daemon in its own process: TypeScript compiled on the fly with swc, like jest does. */
function spawnDaemon(dir: string): ChildProcess {
  const script = `
    const swc = require('@swc/core');
    const fs = require('fs');
    require.extensions['.ts'] = (module, filename) => {
      const out = swc.transformSync(fs.readFileSync(filename, 'utf8'), { filename, jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } });
      module._compile(out.code, filename);
    };
    const { MemFs } = require('./test/helpers/memfs.ts');
    const { mount } = require('./src/fuse/protocol/mount.ts');
    const { exitOnSignal } = require('./src/common/service.ts');
    mount(new MemFs(), ${JSON.stringify(dir)}).then((s) => {
      exitOnSignal(s);
      process.stdout.write('mounted\\n');
    }, (e) => { console.error(e); process.exit(2); });
  `;
  return spawn(process.execPath, ['-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KURVE_LOG_LEVEL: 'warn' } });
}

function waitLine(child: ChildProcess, line: string, ms: number): Promise<void> {
  return withTimeout(new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes(line)) resolve(); });
    child.on('exit', (code) => reject(new Error(`daemon exited with ${code} before "${line}"`)));
  }), ms, `daemon to print "${line}"`);
}

function exitOf(child: ChildProcess, ms: number): Promise<number | string | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode ?? child.signalCode);
  return withTimeout(new Promise((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig))), ms, 'process exit');
}

describeIf([whyNoFuse()], 'FUSE protocol: shutdown', () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  const tempDir = (): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-fuse-sd-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const d of dirs) {
      sysUmount(d, MNT_DETACH);
      fs.rmSync(d, { recursive: true, force: true });
    }
  });

  it('unmount() returns promptly with a request stuck in the file system, and the caller gets an error', async () => {
    const memfs = new StuckFs();
    const m = await mountTemp(memfs);
    await fsp.writeFile(m.p('f'), 'x');
    const ino = (await fsp.stat(m.p('f'))).ino;
    memfs.stuck.add(ino);
    const client = execFile('stat', [m.p('f')]);
    const clientExit = exitOf(client, 10_000);
    await waitFor(() => m.session.pending.size > 0, 5000, 'the stuck GETATTR');
    const t0 = Date.now();
    await m.cleanup();
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await clientExit).not.toBe(0); // ENOTCONN, not a hang
    expect(isMounted(m.dir)).toBe(false);
    expect(memfs.destroyed).toBe(true);
  });

  it('unmount() also frees a notification stuck behind a lock held by an unanswered request', async () => {
    const memfs = new StuckFs();
    const m = await mountTemp(memfs);
    // Safety net for a regression: this process would be stuck in the kernel, out of jest's reach.
    const abort = `/sys/fs/fuse/connections/${m.session.connectionId}/abort`;
    const watchdog = spawn('sh', ['-c', 'sleep 15; [ -e "$1" ] || mount -t fusectl none /sys/fs/fuse/connections; echo 1 > "$1"', 'sh', abort], { stdio: 'ignore' });
    try {
      let mkdirSeen = false;
      memfs.mkdir = () => {
        mkdirSeen = true;
        return new Promise(() => undefined); // never answered: the kernel keeps the root locked
      };
      const client = execFile('mkdir', [m.p('d')]);
      const clientExit = exitOf(client, 10_000);
      await waitFor(() => mkdirSeen, 5000, 'MKDIR to arrive');
      const notified = m.session.notify.invalEntry(1, Buffer.from('d')); // waits for the root's lock
      const state = await Promise.race([notified.then(() => 'returned'), new Promise((r) => setTimeout(() => r('blocked'), 200))]);
      expect(state).toBe('blocked');
      const t0 = Date.now();
      await m.cleanup();
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(await withTimeout(notified, 5000, 'the stuck notification')).toBeLessThanOrEqual(0);
      expect(await clientExit).not.toBe(0);
    } finally {
      watchdog.kill('SIGKILL');
    }
  });

  it('an external umount ends the session cleanly', async () => {
    const memfs = new MemFs();
    const m = await mountTemp(memfs);
    const closed = new Promise<string>((resolve) => m.session.once('closed', resolve));
    await fsp.stat(m.dir);
    await run('umount', [m.dir]);
    expect(await withTimeout(closed, 5000, "the session's 'closed' event")).toBe('unmounted');
    await m.session.closed;
    expect(memfs.destroyed).toBe(true);
    await m.cleanup(); // idempotent after the fact
  });

  it('SIGTERM to a daemon process unmounts and exits 0', async () => {
    const dir = tempDir();
    const child = spawnDaemon(dir);
    children.push(child);
    await waitLine(child, 'mounted', 20_000);
    expect(isMounted(dir)).toBe(true);
    expect((await fsp.stat(dir)).ino).toBe(1);
    child.kill('SIGTERM');
    expect(await exitOf(child, 10_000)).toBe(0);
    expect(isMounted(dir)).toBe(false);
  });

  it('SIGKILL of a daemon: callers get ENOTCONN (no hang) and the mount point can be released', async () => {
    const dir = tempDir();
    const child = spawnDaemon(dir);
    children.push(child);
    await waitLine(child, 'mounted', 20_000);
    const connection = connectionIdOf(dir);
    expect(connection).toBeGreaterThan(0);
    child.kill('SIGKILL');
    await exitOf(child, 10_000);
    // The kernel aborted the connection when the daemon's /dev/fuse fd closed.
    await expect(withTimeout(fsp.stat(path.join(dir, 'x')), 5000, 'stat on a dead mount')).rejects.toMatchObject({ code: 'ENOTCONN' });
    const statProc = await run('stat', [dir]).catch((e: { code?: number }) => e);
    expect((statProc as { code?: number }).code).toBe(1);
    expect(sysUmount(dir, MNT_DETACH)).toBe(0);
    expect(isMounted(dir)).toBe(false);
    expect(sysUmount(dir, MNT_DETACH)).toBe(Errno.EINVAL); // nothing left
  });
});
