// The FUSE session against the real kernel: a MemFs mounted in a temp dir, driven through
// ordinary syscalls (fs.promises, or a child process for calls Node lacks).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Errno, fsError } from '../../src/common/errno';
import { registry } from '../../src/common/metrics';
import { setReadAhead } from '../../src/fuse/protocol/mount';
import { Opcode } from '../../src/fuse/protocol/opcodes';
import type { AttrOut, Reply, RequestContext } from '../../src/fuse/protocol/raw-fs';
import { MemFs } from '../helpers/memfs';
import { childLibc, mountTemp, waitFor, type TempMount } from '../helpers/mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const run = promisify(execFile);
const AT_FDCWD = -100;
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;

/** MemFs with knobs for error paths: a getattr that throws, one that waits for INTERRUPT, no link. */
class TestFs extends MemFs {
  throwOn = new Set<number>();
  slowOn = new Set<number>();
  interrupted = 0;

  override getattr(ctx: RequestContext): Reply<AttrOut> {
    if (this.throwOn.has(ctx.nodeid)) throw new Error('handler bug on purpose');
    if (this.slowOn.has(ctx.nodeid)) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => resolve(super.getattr(ctx) as AttrOut), 10_000);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          this.interrupted++;
          reject(fsError('EINTR'));
        });
      });
    }
    return super.getattr(ctx);
  }
}

describeIf([whyNoFuse()], 'FUSE protocol: operations on a real mount', () => {
  let memfs: TestFs;
  let m: TempMount;

  beforeAll(async () => {
    memfs = new TestFs({ omit: ['link', 'fallocate'] });
    m = await mountTemp(memfs);
  });
  afterAll(async () => {
    await m?.cleanup();
  });

  it('negotiated INIT and knows its connection id', () => {
    const conn = m.session.conn!;
    expect(conn.kernelMajor).toBe(7);
    expect(conn.maxWrite).toBe(1 << 20);
    expect(conn.passthrough).toBe(false);
    expect(m.session.connectionId).toBeGreaterThan(0);
    expect(m.session.opCounts().INIT).toBe(1);
  });

  it('clones the device fd onto the same connection', () => {
    const fd = m.session.cloneDevice();
    try {
      expect(fs.fstatSync(fd).rdev).toBe(fs.statSync('/dev/fuse').rdev);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('stats the root as a directory', async () => {
    const st = await fsp.stat(m.dir);
    expect(st.isDirectory()).toBe(true);
    expect(st.ino).toBe(1);
  });

  it('creates, writes, reads back and appends', async () => {
    await fsp.writeFile(m.p('hello.txt'), 'hello world');
    expect(await fsp.readFile(m.p('hello.txt'), 'utf8')).toBe('hello world');
    await fsp.appendFile(m.p('hello.txt'), '!');
    const st = await fsp.stat(m.p('hello.txt'));
    expect([st.isFile(), st.size, st.mode & 0o777]).toEqual([true, 12, 0o644 & ~process.umask()]);
  });

  it('moves a 3 MiB file through 1 MiB WRITEs and READs intact', async () => {
    const data = Buffer.alloc(3 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
    await fsp.writeFile(m.p('big.bin'), data);
    expect((await fsp.readFile(m.p('big.bin'))).equals(data)).toBe(true);
  });

  it('truncates, chmods and sets times (SETATTR)', async () => {
    await fsp.truncate(m.p('hello.txt'), 5);
    await fsp.chmod(m.p('hello.txt'), 0o600);
    await fsp.utimes(m.p('hello.txt'), 1000, 2000);
    const st = await fsp.stat(m.p('hello.txt'));
    expect([st.size, st.mode & 0o777, st.atimeMs, st.mtimeMs]).toEqual([5, 0o600, 1_000_000, 2_000_000]);
    expect(await fsp.readFile(m.p('hello.txt'), 'utf8')).toBe('hello');
  });

  it('lists directories, with readdirplus and stable entries', async () => {
    await fsp.mkdir(m.p('dir'));
    for (let i = 0; i < 200; i++) await fsp.writeFile(m.p('dir', `f${String(i).padStart(3, '0')}`), '');
    const names = (await fsp.readdir(m.p('dir'))).sort();
    expect(names).toHaveLength(200);
    expect(names[0]).toBe('f000');
    const typed = await fsp.readdir(m.dir, { withFileTypes: true });
    expect(typed.find((d) => d.name === 'dir')?.isDirectory()).toBe(true);
    const counts = m.session.opCounts();
    expect((counts.READDIRPLUS ?? 0) + (counts.READDIR ?? 0)).toBeGreaterThan(0);
  });

  it('renames, including RENAME_NOREPLACE and RENAME_EXCHANGE (RENAME2)', async () => {
    await fsp.writeFile(m.p('a'), 'A');
    await fsp.writeFile(m.p('b'), 'B');
    await fsp.rename(m.p('a'), m.p('dir', 'a2'));
    await expect(fsp.stat(m.p('a'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fsp.readFile(m.p('dir', 'a2'), 'utf8')).toBe('A');
    const proto = 'int renameat2(int, const char *, int, const char *, unsigned int)';
    expect(await childLibc(proto, [AT_FDCWD, m.p('dir', 'a2'), AT_FDCWD, m.p('b'), RENAME_NOREPLACE])).toMatchObject({ ret: -1, errno: Errno.EEXIST });
    expect(await childLibc(proto, [AT_FDCWD, m.p('dir', 'a2'), AT_FDCWD, m.p('b'), RENAME_EXCHANGE])).toMatchObject({ ret: 0 });
    expect(await fsp.readFile(m.p('b'), 'utf8')).toBe('A');
    expect(await fsp.readFile(m.p('dir', 'a2'), 'utf8')).toBe('B');
  });

  it('symlinks, readlink, unlink and rmdir', async () => {
    await fsp.symlink('hello.txt', m.p('ln'));
    expect(await fsp.readlink(m.p('ln'))).toBe('hello.txt');
    expect(await fsp.readFile(m.p('ln'), 'utf8')).toBe('hello');
    await fsp.unlink(m.p('ln'));
    await fsp.mkdir(m.p('empty'));
    await fsp.rmdir(m.p('empty'));
    await expect(fsp.rmdir(m.p('dir'))).rejects.toMatchObject({ code: 'ENOTEMPTY' });
  });

  it('sets, gets, lists and removes xattrs (size probes and ERANGE included)', async () => {
    const set = 'int setxattr(const char *, const char *, const char *, size_t, int)';
    const get = 'long getxattr(const char *, const char *, _Out_ uint8_t *, size_t)';
    const list = 'long listxattr(const char *, _Out_ uint8_t *, size_t)';
    const f = m.p('hello.txt');
    expect((await childLibc(set, [f, 'user.color', 'blue', 4, 0])).ret).toBe(0);
    expect((await childLibc(set, [f, 'user.color', 'red', 3, 1 /* XATTR_CREATE */])).errno).toBe(Errno.EEXIST);
    expect(await childLibc(get, [f, 'user.color', 64])).toMatchObject({ ret: 4, out: 'blue' });
    expect((await childLibc(get, [f, 'user.color', 2])).errno).toBe(Errno.ERANGE);
    expect((await childLibc(get, [f, 'user.nope', 64])).errno).toBe(Errno.ENODATA);
    expect(await childLibc(list, [f, 256])).toMatchObject({ ret: 11, out: 'user.color\0' });
    expect((await childLibc('int removexattr(const char *, const char *)', [f, 'user.color'])).ret).toBe(0);
    expect((await childLibc(get, [f, 'user.color', 64])).errno).toBe(Errno.ENODATA);
  });

  it('answers ENOSYS for an operation the file system does not implement', async () => {
    // LINK reaches the daemon, is answered ENOSYS (see the errors metric), and the kernel
    // reports it to link(2) as EPERM ("hard links not supported here").
    const before = m.session.opCounts().LINK ?? 0;
    await expect(fsp.link(m.p('hello.txt'), m.p('hard'))).rejects.toMatchObject({ code: 'EPERM' });
    expect(m.session.opCounts().LINK).toBe(before + 1);
    expect(await registry.metrics()).toMatch(/kurve_fuse_errors_total\{op="LINK",errno="ENOSYS"\} 1/);
    // FALLOCATE is not in MemFs: the kernel turns ENOSYS into EOPNOTSUPP and stops asking.
    const r = await run('fallocate', ['-l', '4096', m.p('hello.txt')]).catch((e: { stderr: string }) => e);
    expect(String((r as { stderr: string }).stderr)).toMatch(/not supported/i);
    expect(m.session.opCounts().FALLOCATE).toBe(1);
    await run('fallocate', ['-l', '4096', m.p('hello.txt')]).catch(() => undefined);
    expect(m.session.opCounts().FALLOCATE).toBe(1);
  });

  it('turns a throwing handler into EIO and keeps serving', async () => {
    await fsp.writeFile(m.p('bad'), 'x');
    const ino = (await fsp.stat(m.p('bad'))).ino;
    memfs.throwOn.add(ino);
    await expect(fsp.stat(m.p('bad'))).rejects.toMatchObject({ code: 'EIO' });
    memfs.throwOn.delete(ino);
    expect((await fsp.stat(m.p('bad'))).size).toBe(1);
  });

  it('aborts a handler when the caller is interrupted (INTERRUPT)', async () => {
    await fsp.writeFile(m.p('slow'), 'x');
    const ino = (await fsp.stat(m.p('slow'))).ino;
    memfs.slowOn.add(ino);
    const child = execFile('stat', [m.p('slow')]);
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await waitFor(() => m.session.pending.size > 0, 5000, 'the slow GETATTR to arrive');
    // Handlers run concurrently: other requests are answered while that one waits.
    expect((await fsp.stat(m.p('hello.txt'))).isFile()).toBe(true);
    child.kill('SIGKILL');
    await exited;
    await waitFor(() => memfs.interrupted === 1, 5000, 'the handler to see the abort');
    memfs.slowOn.delete(ino);
    expect(m.session.opCounts().INTERRUPT).toBeGreaterThanOrEqual(1);
    await waitFor(() => m.session.pending.size === 0, 2000, 'no pending requests');
  });

  it('sets the mount readahead through its bdi', async () => {
    setReadAhead(m.session.connectionId, 4 << 20);
    const id = m.session.connectionId;
    expect((await fsp.readFile(`/sys/class/bdi/${id >> 20}:${id & 0xfffff}/read_ahead_kb`, 'utf8')).trim()).toBe('4096');
  });

  it('statfs', async () => {
    const st = await fsp.statfs(m.dir);
    expect([st.blocks, st.bfree, st.bavail, st.bsize]).toEqual([1000, 500, 400, 4096]);
  });

  it('records per-opcode metrics', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/kurve_fuse_requests_total\{op="GETATTR"\} \d+/);
    expect(text).toMatch(/kurve_fuse_request_duration_seconds_bucket\{le="[^"]+",op="LOOKUP"\}/);
    expect(text).toMatch(/kurve_fuse_errors_total\{op="LINK",errno="ENOSYS"\} 1/);
    expect(text).toMatch(/kurve_fuse_inflight_requests \d+/);
  });

  it('gets every lookup count back when the kernel drops its caches', async () => {
    expect(memfs.inodes.size).toBeGreaterThan(100);
    await fsp.writeFile('/proc/sys/vm/drop_caches', '2');
    await waitFor(() => memfs.inodes.size === 1, 5000, `all inodes forgotten (still ${memfs.inodes.size})`);
    expect(m.session.bugs).toBe(0);
    const counts = m.session.opCounts();
    expect((counts.FORGET ?? 0) + (counts.BATCH_FORGET ?? 0)).toBeGreaterThan(0);
  });
});

describeIf([whyNoFuse()], 'FUSE protocol: mount options', () => {
  const optionsOf = (dir: string): string => {
    const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === dir) ?? '';
    return line;
  };

  it('passes allow_other, default_permissions off, read-only and the fs name to mount(2)', async () => {
    const m = await mountTemp(new MemFs(), { allowOther: true, defaultPermissions: false, readOnly: true, fsname: 'kurve:test' });
    try {
      const line = optionsOf(m.dir);
      expect(line).toMatch(/ fuse\.kurve kurve:test /);
      expect(line).toMatch(/allow_other/);
      expect(line).not.toMatch(/default_permissions/);
      expect(line).toMatch(/max_read=1048576/);
      expect(line.split(' ')[5]).toMatch(/^ro,/);
      await expect(fsp.writeFile(m.p('x'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    } finally {
      await m.cleanup();
    }
  });

  it('serves requests with the npm epoll loop driver too', async () => {
    const m = await mountTemp(new MemFs(), { loop: 'epoll' });
    try {
      await fsp.writeFile(m.p('f'), 'via epoll');
      expect(await fsp.readFile(m.p('f'), 'utf8')).toBe('via epoll');
      const closed = new Promise<string>((resolve) => m.session.once('closed', resolve));
      await run('umount', [m.dir]);
      expect(await closed).toBe('unmounted');
    } finally {
      await m.cleanup();
    }
  });

  it('serves requests with a poll window after each reply, and still unmounts at once', async () => {
    const m = await mountTemp(new MemFs(), { pollMicros: 500 });
    try {
      await fsp.mkdir(m.p('d'));
      await Promise.all(Array.from({ length: 50 }, (_, i) => fsp.writeFile(m.p(`d/f${i}`), `file ${i}`)));
      for (let i = 0; i < 50; i++) expect(await fsp.readFile(m.p(`d/f${i}`), 'utf8')).toBe(`file ${i}`);
      expect((await fsp.readdir(m.p('d'))).length).toBe(50);
      const closed = new Promise<string>((resolve) => m.session.once('closed', resolve));
      const t0 = Date.now();
      await run('umount', [m.dir]);
      expect(await closed).toBe('unmounted');
      expect(Date.now() - t0).toBeLessThan(2000);
    } finally {
      await m.cleanup();
    }
  });

  it('reports requests answered slowMs or later to onSlow, with opcode, inode and duration', async () => {
    /** GETATTR of the inodes in `slow` answers after 300 ms. */
    class SlowGetattrFs extends MemFs {
      readonly slow = new Set<number>();
      override getattr(ctx: RequestContext): Reply<AttrOut> {
        const r = super.getattr(ctx);
        if (!this.slow.has(ctx.nodeid)) return r;
        return new Promise((resolve) => setTimeout(() => resolve(r), 300));
      }
    }
    const slowFs = new SlowGetattrFs();
    const reports: Array<{ opcode: number; nodeid: number; ms: number }> = [];
    const m = await mountTemp(slowFs, { slowMs: 200, onSlow: (opcode, nodeid, ms) => reports.push({ opcode, nodeid, ms }) });
    try {
      await fsp.writeFile(m.p('f'), 'x');
      const fh = await fsp.open(m.p('f'));
      const ino = (await fh.stat()).ino;
      slowFs.slow.add(ino);
      expect((await fh.stat()).size).toBe(1); // attributes expire at once (attrValid 0): a GETATTR
      await fh.close();
      const slow = reports.filter((r) => r.opcode === Opcode.GETATTR);
      expect(slow).toEqual([{ opcode: Opcode.GETATTR, nodeid: ino, ms: expect.any(Number) }]);
      expect(slow[0].ms).toBeGreaterThanOrEqual(290);
      // Never below the threshold, whatever else the load made slow.
      expect(reports.filter((r) => r.ms < 200)).toEqual([]);
    } finally {
      await m.cleanup();
    }
    await expect(mountTemp(new MemFs(), { slowMs: -1 })).rejects.toThrow(/slowMs must be 0 or more/);
  });

  it('rejects a bad maxWrite and a missing mount point with a clear error', async () => {
    await expect(mountTemp(new MemFs(), { maxWrite: 1000 })).rejects.toThrow(/maxWrite must be a multiple of 4096/);
    await expect(mountTemp(new MemFs(), { pollMicros: -1 })).rejects.toThrow(/pollMicros must be between 0 and 10000/);
    const { mount } = await import('../../src/fuse/protocol/mount');
    await expect(mount(new MemFs(), '/nonexistent/kurve-mnt')).rejects.toThrow(/mount point .*ENOENT/);
  });
});
