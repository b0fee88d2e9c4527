// POSIX behaviour of a real Kurve mount (`kurve up` in a child process), part 1: files, truncate,
// unlink, hard links, symlinks, directories, rename. Each case asserts the exact result or errno.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveUp, py } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const MiB = 1024 * 1024;

describeIf([whyNoFuse()], 'POSIX files, links, directories and rename on a Kurve mount', () => {
  let k: Daemon;
  let n = 0;
  /** A fresh directory per case. */
  const fresh = async (): Promise<string> => {
    const d = path.join(k.mountpoint, `t${++n}`);
    await fsp.mkdir(d);
    return d;
  };
  const code = async (p: Promise<unknown>): Promise<string> => p.then(() => 'OK', (e: NodeJS.ErrnoException) => e.code ?? String(e));
  const pattern = (len: number, seed: number): Buffer => {
    const b = Buffer.alloc(len);
    for (let i = 0; i < len; i++) b[i] = (i * 31 + seed) & 0xff;
    return b;
  };

  beforeAll(async () => {
    k = await kurveUp();
  });
  afterAll(async () => {
    await cleanupKurve();
  });

  describe('files', () => {
    it('write then read back', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'hello kurve');
      expect(await fsp.readFile(p, 'utf8')).toBe('hello kurve');
    });
    it('O_CREAT|O_EXCL on an existing file is EEXIST', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'x');
      expect(await code(fsp.open(p, 'wx'))).toBe('EEXIST');
    });
    it('O_CREAT|O_EXCL on a new name creates it', async () => {
      const p = path.join(await fresh(), 'f');
      const fh = await fsp.open(p, 'wx');
      await fh.close();
      expect((await fsp.stat(p)).size).toBe(0);
    });
    it('open of a missing file without O_CREAT is ENOENT', async () => {
      expect(await code(fsp.open(path.join(await fresh(), 'nope'), 'r'))).toBe('ENOENT');
    });
    it('O_TRUNC empties an existing file', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'abcdef');
      const fh = await fsp.open(p, 'w');
      await fh.close();
      expect((await fsp.stat(p)).size).toBe(0);
      expect(await fsp.readFile(p, 'utf8')).toBe('');
    });
    it('O_APPEND writes at the end whatever the position', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'abc');
      const fh = await fsp.open(p, 'a');
      await fh.write('def', 0);
      await fh.close();
      expect(await fsp.readFile(p, 'utf8')).toBe('abcdef');
    });
    it('O_APPEND from two handles interleaves without overwriting', async () => {
      const p = path.join(await fresh(), 'f');
      const a = await fsp.open(p, 'a');
      const b = await fsp.open(p, 'a');
      for (let i = 0; i < 20; i++) {
        await a.write('A'.repeat(100));
        await b.write('B'.repeat(50));
      }
      await a.close();
      await b.close();
      const s = await fsp.readFile(p, 'utf8');
      expect(s.length).toBe(20 * 150);
      expect(s.split('').filter((c) => c === 'A').length).toBe(2000);
      expect(s.split('').filter((c) => c === 'B').length).toBe(1000);
    });
    it('a write past EOF leaves a hole that reads as zeros', async () => {
      const p = path.join(await fresh(), 'f');
      const fh = await fsp.open(p, 'w+');
      await fh.write(Buffer.from('end'), 0, 3, 100_000);
      await fh.close();
      const b = await fsp.readFile(p);
      expect(b.length).toBe(100_003);
      expect(b.subarray(0, 100_000).every((x) => x === 0)).toBe(true);
      expect(b.subarray(100_000).toString()).toBe('end');
    });
    it('a sparse file across chunks keeps its size and data', async () => {
      const p = path.join(await fresh(), 'f');
      const fh = await fsp.open(p, 'w+');
      await fh.write(Buffer.from('x'), 0, 1, 9 * MiB);
      await fh.close();
      const st = await fsp.stat(p);
      expect(st.size).toBe(9 * MiB + 1);
      const b = await fsp.readFile(p);
      expect(b[9 * MiB]).toBe(0x78);
      expect(b.subarray(0, 9 * MiB).every((x) => x === 0)).toBe(true);
    });
    it('read at EOF returns 0 bytes', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'abc');
      const fh = await fsp.open(p, 'r');
      const { bytesRead } = await fh.read(Buffer.alloc(10), 0, 10, 3);
      await fh.close();
      expect(bytesRead).toBe(0);
    });
    it('a second open sees data written by the first before close', async () => {
      const p = path.join(await fresh(), 'f');
      const w = await fsp.open(p, 'w');
      await w.write('visible');
      const r = await fsp.open(p, 'r');
      const b = Buffer.alloc(7);
      await r.read(b, 0, 7, 0);
      await r.close();
      await w.close();
      expect(b.toString()).toBe('visible');
    });
    it('write on an O_RDONLY descriptor is EBADF', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'x');
      const fh = await fsp.open(p, 'r');
      expect(await code(fh.write('y'))).toBe('EBADF');
      await fh.close();
    });
    it('read on an O_WRONLY descriptor is EBADF', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'x');
      const fh = await fsp.open(p, 'w');
      expect(await code(fh.read(Buffer.alloc(1), 0, 1, 0))).toBe('EBADF');
      await fh.close();
    });
    it('opening a directory for writing is EISDIR', async () => {
      expect(await code(fsp.open(await fresh(), 'w'))).toBe('EISDIR');
    });
    it('a 9 MiB file spanning three chunks reads back byte for byte', async () => {
      const p = path.join(await fresh(), 'f');
      const data = pattern(9 * MiB + 123, 7);
      await fsp.writeFile(p, data);
      expect((await fsp.readFile(p)).equals(data)).toBe(true);
    });
    it('overwriting across a chunk boundary keeps the rest', async () => {
      const p = path.join(await fresh(), 'f');
      const data = pattern(10 * MiB, 3);
      await fsp.writeFile(p, data);
      const patch = pattern(2 * MiB, 99);
      const fh = await fsp.open(p, 'r+');
      await fh.write(patch, 0, patch.length, 3 * MiB);
      await fh.close();
      patch.copy(data, 3 * MiB);
      expect((await fsp.readFile(p)).equals(data)).toBe(true);
    });
    it('O_DIRECT aligned write and read', async () => {
      const p = path.join(await fresh(), 'f');
      const r = py(`
p = ${JSON.stringify(p)}
fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o644)
m = mmap.mmap(-1, 8192)
m.write(b'D' * 8192)
n = os.pwrite(fd, m, 0)
m2 = mmap.mmap(-1, 8192)
got = os.preadv(fd, [m2], 0)
os.close(fd)
out([n, got, m2[:4].decode()])`);
      expect(r).toEqual([8192, 8192, 'DDDD']);
    });
    it('O_SYNC writes are durable and readable after reopen', async () => {
      const p = path.join(await fresh(), 'f');
      const r = py(`
p = ${JSON.stringify(p)}
fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_SYNC, 0o644)
os.write(fd, b'synced')
os.close(fd)
out(open(p).read())`);
      expect(r).toBe('synced');
    });
    it('fsync and fdatasync succeed', async () => {
      const p = path.join(await fresh(), 'f');
      const fh = await fsp.open(p, 'w');
      await fh.write('x');
      await fh.sync();
      await fh.datasync();
      await fh.close();
      expect(await fsp.readFile(p, 'utf8')).toBe('x');
    });
  });

  describe('truncate', () => {
    it('ftruncate down keeps the head', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'abcdefgh');
      const fh = await fsp.open(p, 'r+');
      await fh.truncate(3);
      await fh.close();
      expect(await fsp.readFile(p, 'utf8')).toBe('abc');
    });
    it('truncate up reads zeros', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'ab');
      await fsp.truncate(p, 6);
      expect((await fsp.readFile(p)).equals(Buffer.from([0x61, 0x62, 0, 0, 0, 0]))).toBe(true);
    });
    it('truncate to 0', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'abc');
      await fsp.truncate(p, 0);
      expect((await fsp.stat(p)).size).toBe(0);
    });
    it('truncate down then up: the old tail does not come back', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'abcdefgh');
      await fsp.truncate(p, 2);
      await fsp.truncate(p, 8);
      expect((await fsp.readFile(p)).equals(Buffer.from([0x61, 0x62, 0, 0, 0, 0, 0, 0]))).toBe(true);
    });
    it('truncate across chunks: 10 MiB -> 3 MiB -> 6 MiB', async () => {
      const p = path.join(await fresh(), 'f');
      const data = pattern(10 * MiB, 5);
      await fsp.writeFile(p, data);
      await fsp.truncate(p, 3 * MiB + 10);
      await fsp.truncate(p, 6 * MiB);
      const b = await fsp.readFile(p);
      expect(b.length).toBe(6 * MiB);
      expect(b.subarray(0, 3 * MiB + 10).equals(data.subarray(0, 3 * MiB + 10))).toBe(true);
      expect(b.subarray(3 * MiB + 10).every((x) => x === 0)).toBe(true);
    });
    it('truncate of a directory is EISDIR', async () => {
      expect(await code(fsp.truncate(await fresh(), 0))).toBe('EISDIR');
    });
    it('truncate of a missing file is ENOENT', async () => {
      expect(await code(fsp.truncate(path.join(await fresh(), 'nope'), 0))).toBe('ENOENT');
    });
    it('truncate to a negative size is EINVAL', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'x');
      expect(py(`out(E(os.truncate, ${JSON.stringify(p)}, -1))`)).toBe('EINVAL');
    });
  });

  describe('unlink', () => {
    it('removes the name', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'x');
      await fsp.unlink(p);
      expect(await code(fsp.stat(p))).toBe('ENOENT');
    });
    it('of a missing name is ENOENT', async () => {
      expect(await code(fsp.unlink(path.join(await fresh(), 'nope')))).toBe('ENOENT');
    });
    it('of a directory is EISDIR', async () => {
      const d = await fresh();
      await fsp.mkdir(path.join(d, 'sub'));
      expect(await code(fsp.unlink(path.join(d, 'sub')))).toBe('EISDIR');
    });
    it('while open: the data stays readable until the last close', async () => {
      const p = path.join(await fresh(), 'f');
      const data = pattern(5 * MiB, 11);
      await fsp.writeFile(p, data);
      const fh = await fsp.open(p, 'r');
      await fsp.unlink(p);
      expect(await code(fsp.stat(p))).toBe('ENOENT');
      const b = Buffer.alloc(data.length);
      const { bytesRead } = await fh.read(b, 0, b.length, 0);
      await fh.close();
      expect(bytesRead).toBe(data.length);
      expect(b.equals(data)).toBe(true);
    });
    it('while open: writes still work and fstat shows nlink 0', async () => {
      const p = path.join(await fresh(), 'f');
      const fh = await fsp.open(p, 'w+');
      await fsp.unlink(p);
      await fh.write('still here', 0);
      const st = await fh.stat();
      const b = Buffer.alloc(10);
      await fh.read(b, 0, 10, 0);
      await fh.close();
      expect(st.nlink).toBe(0);
      expect(b.toString()).toBe('still here');
    });
    it('a new file under the unlinked name starts empty', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'old content');
      await fsp.unlink(p);
      await fsp.writeFile(p, '');
      expect((await fsp.stat(p)).size).toBe(0);
    });
    it('in a missing directory is ENOENT', async () => {
      expect(await code(fsp.unlink(path.join(await fresh(), 'nodir', 'f')))).toBe('ENOENT');
    });
  });

  describe('hard links', () => {
    it('link raises nlink to 2 on both names, same inode', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), 'x');
      await fsp.link(path.join(d, 'a'), path.join(d, 'b'));
      const [a, b] = await Promise.all([fsp.stat(path.join(d, 'a')), fsp.stat(path.join(d, 'b'))]);
      expect([a.nlink, b.nlink]).toEqual([2, 2]);
      expect(a.ino).toBe(b.ino);
    });
    it('data written through one name is read through the other', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), 'one');
      await fsp.link(path.join(d, 'a'), path.join(d, 'b'));
      await fsp.writeFile(path.join(d, 'b'), 'two');
      expect(await fsp.readFile(path.join(d, 'a'), 'utf8')).toBe('two');
    });
    it('unlinking one name keeps the other with nlink 1', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), 'keep');
      await fsp.link(path.join(d, 'a'), path.join(d, 'b'));
      await fsp.unlink(path.join(d, 'a'));
      const st = await fsp.stat(path.join(d, 'b'));
      expect(st.nlink).toBe(1);
      expect(await fsp.readFile(path.join(d, 'b'), 'utf8')).toBe('keep');
    });
    it('link onto an existing name is EEXIST', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), '');
      await fsp.writeFile(path.join(d, 'b'), '');
      expect(await code(fsp.link(path.join(d, 'a'), path.join(d, 'b')))).toBe('EEXIST');
    });
    it('link of a directory is EPERM', async () => {
      const d = await fresh();
      await fsp.mkdir(path.join(d, 'sub'));
      expect(await code(fsp.link(path.join(d, 'sub'), path.join(d, 'l')))).toBe('EPERM');
    });
    it('link of a missing file is ENOENT', async () => {
      const d = await fresh();
      expect(await code(fsp.link(path.join(d, 'nope'), path.join(d, 'l')))).toBe('ENOENT');
    });
    it('link into another directory', async () => {
      const d = await fresh();
      await fsp.mkdir(path.join(d, 'x'));
      await fsp.writeFile(path.join(d, 'a'), 'cross');
      await fsp.link(path.join(d, 'a'), path.join(d, 'x', 'b'));
      expect(await fsp.readFile(path.join(d, 'x', 'b'), 'utf8')).toBe('cross');
    });
  });

  describe('symlinks', () => {
    it('symlink and readlink', async () => {
      const d = await fresh();
      await fsp.symlink('some/target', path.join(d, 'l'));
      expect(await fsp.readlink(path.join(d, 'l'))).toBe('some/target');
    });
    it('lstat sees the link, stat follows it', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'f'), 'abc');
      await fsp.symlink('f', path.join(d, 'l'));
      expect((await fsp.lstat(path.join(d, 'l'))).isSymbolicLink()).toBe(true);
      expect((await fsp.stat(path.join(d, 'l'))).size).toBe(3);
    });
    it('reading through a symlink', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'f'), 'via link');
      await fsp.symlink('f', path.join(d, 'l'));
      expect(await fsp.readFile(path.join(d, 'l'), 'utf8')).toBe('via link');
    });
    it('a dangling symlink: stat ENOENT, lstat works', async () => {
      const d = await fresh();
      await fsp.symlink('missing', path.join(d, 'l'));
      expect(await code(fsp.stat(path.join(d, 'l')))).toBe('ENOENT');
      expect((await fsp.lstat(path.join(d, 'l'))).isSymbolicLink()).toBe(true);
    });
    it('symlink onto an existing name is EEXIST', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'f'), '');
      expect(await code(fsp.symlink('x', path.join(d, 'f')))).toBe('EEXIST');
    });
    it('readlink of a regular file is EINVAL', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'f'), '');
      expect(await code(fsp.readlink(path.join(d, 'f')))).toBe('EINVAL');
    });
    it('a symlink loop is ELOOP', async () => {
      const d = await fresh();
      await fsp.symlink('b', path.join(d, 'a'));
      await fsp.symlink('a', path.join(d, 'b'));
      expect(await code(fsp.stat(path.join(d, 'a')))).toBe('ELOOP');
    });
    it('a 1000-byte target round-trips', async () => {
      const d = await fresh();
      const t = 'x/'.repeat(500);
      await fsp.symlink(t, path.join(d, 'l'));
      expect(await fsp.readlink(path.join(d, 'l'))).toBe(t);
      expect((await fsp.lstat(path.join(d, 'l'))).size).toBe(1000);
    });
  });

  describe('directories', () => {
    it('mkdir makes a directory with nlink 2', async () => {
      const d = await fresh();
      await fsp.mkdir(path.join(d, 's'));
      const st = await fsp.stat(path.join(d, 's'));
      expect(st.isDirectory()).toBe(true);
      expect(st.nlink).toBe(2);
    });
    it('mkdir of an existing name is EEXIST', async () => {
      const d = await fresh();
      await fsp.mkdir(path.join(d, 's'));
      expect(await code(fsp.mkdir(path.join(d, 's')))).toBe('EEXIST');
    });
    it('rmdir of an empty directory', async () => {
      const d = await fresh();
      await fsp.mkdir(path.join(d, 's'));
      await fsp.rmdir(path.join(d, 's'));
      expect(await code(fsp.stat(path.join(d, 's')))).toBe('ENOENT');
    });
    it('rmdir of a non-empty directory is ENOTEMPTY', async () => {
      const d = await fresh();
      await fsp.mkdir(path.join(d, 's'));
      await fsp.writeFile(path.join(d, 's', 'f'), '');
      expect(await code(fsp.rmdir(path.join(d, 's')))).toBe('ENOTEMPTY');
    });
    it('rmdir of a file is ENOTDIR', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'f'), '');
      expect(await code(fsp.rmdir(path.join(d, 'f')))).toBe('ENOTDIR');
    });
    it('rmdir of a missing name is ENOENT', async () => {
      expect(await code(fsp.rmdir(path.join(await fresh(), 'nope')))).toBe('ENOENT');
    });
    it('readdir lists every entry exactly once (300 files)', async () => {
      const d = await fresh();
      const names = Array.from({ length: 300 }, (_, i) => `file-${i}`);
      for (const nm of names) await fsp.writeFile(path.join(d, nm), '');
      expect((await fsp.readdir(d)).sort()).toEqual([...names].sort());
    });
    it('readdir includes . and ..', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'f'), '');
      const r = py(`
import subprocess
out(sorted(subprocess.run(['ls', '-a', ${JSON.stringify(d)}], capture_output=True, text=True).stdout.split()))`);
      expect(r).toEqual(['.', '..', 'f']);
    });
    it('a subdirectory raises the parent nlink', async () => {
      const d = await fresh();
      expect((await fsp.stat(d)).nlink).toBe(2);
      await fsp.mkdir(path.join(d, 's'));
      expect((await fsp.stat(d)).nlink).toBe(3);
    });
    it('mkdir under a regular file is ENOTDIR', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'f'), '');
      expect(await code(fsp.mkdir(path.join(d, 'f', 's')))).toBe('ENOTDIR');
    });
    it('a 255-byte name works, 256 bytes is ENAMETOOLONG', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'n'.repeat(255)), 'ok');
      expect(await fsp.readFile(path.join(d, 'n'.repeat(255)), 'utf8')).toBe('ok');
      expect(await code(fsp.writeFile(path.join(d, 'n'.repeat(256)), ''))).toBe('ENAMETOOLONG');
    });
    it('non-UTF-8 names round-trip as bytes', async () => {
      const d = await fresh();
      const r = py(`
d = ${JSON.stringify(d)}.encode()
name = b'\\xff\\xfe-raw-\\x80'
open(d + b'/' + name, 'wb').write(b'bytes')
out([n.hex() for n in os.listdir(d)] + [open(d + b'/' + name, 'rb').read().decode()])`);
      expect(r).toEqual([Buffer.from([0xff, 0xfe, ...Buffer.from('-raw-'), 0x80]).toString('hex'), 'bytes']);
    });
    it('2000 entries: readdir count and stat of each through readdirplus', async () => {
      const d = await fresh();
      const r = py(`
d = ${JSON.stringify(d)}
for i in range(2000):
    open(d + '/e%d' % i, 'w').close()
out([len(os.listdir(d)), sum(1 for e in os.scandir(d) if e.is_file())])`, { timeoutMs: 60_000 });
      expect(r).toEqual([2000, 2000]);
    });
    it('mkdir applies mode and umask', async () => {
      const d = await fresh();
      const r = py(`
os.umask(0o022)
os.mkdir(${JSON.stringify(d)} + '/m', 0o777)
out(oct(os.stat(${JSON.stringify(d)} + '/m').st_mode & 0o7777))`);
      expect(r).toBe('0o755');
    });
  });

  describe('rename', () => {
    it('within a directory', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), 'x');
      await fsp.rename(path.join(d, 'a'), path.join(d, 'b'));
      expect(await code(fsp.stat(path.join(d, 'a')))).toBe('ENOENT');
      expect(await fsp.readFile(path.join(d, 'b'), 'utf8')).toBe('x');
    });
    it('across directories', async () => {
      const d = await fresh();
      await fsp.mkdir(path.join(d, 'x'));
      await fsp.writeFile(path.join(d, 'a'), 'moved');
      await fsp.rename(path.join(d, 'a'), path.join(d, 'x', 'a'));
      expect(await fsp.readFile(path.join(d, 'x', 'a'), 'utf8')).toBe('moved');
    });
    it('over an existing file replaces it', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), 'new');
      await fsp.writeFile(path.join(d, 'b'), 'old');
      await fsp.rename(path.join(d, 'a'), path.join(d, 'b'));
      expect(await fsp.readFile(path.join(d, 'b'), 'utf8')).toBe('new');
      expect((await fsp.readdir(d)).sort()).toEqual(['b']);
    });
    it('a directory over an empty directory', async () => {
      const d = await fresh();
      await fsp.mkdir(path.join(d, 'a'));
      await fsp.writeFile(path.join(d, 'a', 'f'), '');
      await fsp.mkdir(path.join(d, 'b'));
      await fsp.rename(path.join(d, 'a'), path.join(d, 'b'));
      expect(await fsp.readdir(path.join(d, 'b'))).toEqual(['f']);
    });
    it('a directory over a non-empty directory is ENOTEMPTY', async () => {
      const d = await fresh();
      await fsp.mkdir(path.join(d, 'a'));
      await fsp.mkdir(path.join(d, 'b'));
      await fsp.writeFile(path.join(d, 'b', 'f'), '');
      expect(await code(fsp.rename(path.join(d, 'a'), path.join(d, 'b')))).toBe('ENOTEMPTY');
    });
    it('a file over a directory is EISDIR', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), '');
      await fsp.mkdir(path.join(d, 'b'));
      expect(await code(fsp.rename(path.join(d, 'a'), path.join(d, 'b')))).toBe('EISDIR');
    });
    it('a directory over a file is ENOTDIR', async () => {
      const d = await fresh();
      await fsp.mkdir(path.join(d, 'a'));
      await fsp.writeFile(path.join(d, 'b'), '');
      expect(await code(fsp.rename(path.join(d, 'a'), path.join(d, 'b')))).toBe('ENOTDIR');
    });
    it('a directory into its own subdirectory is EINVAL', async () => {
      const d = await fresh();
      await fsp.mkdir(path.join(d, 'a', 'b'), { recursive: true });
      expect(await code(fsp.rename(path.join(d, 'a'), path.join(d, 'a', 'b', 'c')))).toBe('EINVAL');
    });
    const rename2 = (d: string, a: string, b: string, flags: number): unknown =>
      py(`out(E(lambda: C(libc.renameat2(-100, ${JSON.stringify(path.join(d, a))}.encode(), -100, ${JSON.stringify(path.join(d, b))}.encode(), ${flags}))))`);
    it('RENAME_NOREPLACE onto an existing name is EEXIST', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), '');
      await fsp.writeFile(path.join(d, 'b'), '');
      expect(rename2(d, 'a', 'b', 1)).toBe('EEXIST');
    });
    it('RENAME_NOREPLACE onto a free name renames', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), 'n');
      expect(rename2(d, 'a', 'b', 1)).toBe(0);
      expect(await fsp.readFile(path.join(d, 'b'), 'utf8')).toBe('n');
    });
    it('RENAME_EXCHANGE swaps two names', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), 'A');
      await fsp.mkdir(path.join(d, 'b'));
      expect(rename2(d, 'a', 'b', 2)).toBe(0);
      expect(await fsp.readFile(path.join(d, 'b'), 'utf8')).toBe('A');
      expect((await fsp.stat(path.join(d, 'a'))).isDirectory()).toBe(true);
    });
    it('RENAME_EXCHANGE with a missing target is ENOENT', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), '');
      expect(rename2(d, 'a', 'b', 2)).toBe('ENOENT');
    });
    it('rename of a missing name is ENOENT', async () => {
      const d = await fresh();
      expect(await code(fsp.rename(path.join(d, 'nope'), path.join(d, 'x')))).toBe('ENOENT');
    });
    it('rename onto itself does nothing', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), 'same');
      await fsp.rename(path.join(d, 'a'), path.join(d, 'a'));
      expect(await fsp.readFile(path.join(d, 'a'), 'utf8')).toBe('same');
    });
    it('rename of one hard link onto another leaves both', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), 'h');
      await fsp.link(path.join(d, 'a'), path.join(d, 'b'));
      await fsp.rename(path.join(d, 'a'), path.join(d, 'b'));
      expect((await fsp.readdir(d)).sort()).toEqual(['a', 'b']);
    });
    it('an open descriptor survives the rename of its file', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'a'), 'before');
      const fh = await fsp.open(path.join(d, 'a'), 'r+');
      await fsp.rename(path.join(d, 'a'), path.join(d, 'b'));
      await fh.write('after!', 0);
      await fh.close();
      expect(await fsp.readFile(path.join(d, 'b'), 'utf8')).toBe('after!');
    });
  });
});
