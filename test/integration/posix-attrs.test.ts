// POSIX behaviour of a real Kurve mount, part 2: attributes and times, permission checks as a
// non-root user, special files, xattrs, fallocate, SEEK_DATA/SEEK_HOLE, mmap coherence, statfs.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveUp, py } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const MiB = 1024 * 1024;
const NOBODY = { uid: 65534, gid: 65534 };

describeIf([whyNoFuse()], 'POSIX attributes, permissions, xattrs, fallocate, seek and mmap on a Kurve mount', () => {
  let k: Daemon;
  let n = 0;
  const fresh = async (mode = 0o755): Promise<string> => {
    const d = path.join(k.mountpoint, `a${++n}`);
    await fsp.mkdir(d);
    await fsp.chmod(d, mode);
    return d;
  };
  const code = async (p: Promise<unknown>): Promise<string> => p.then(() => 'OK', (e: NodeJS.ErrnoException) => e.code ?? String(e));
  const J = JSON.stringify;

  beforeAll(async () => {
    // allow_other: the non-root cases run as another user (FUSE refuses everyone but the mounter otherwise).
    k = await kurveUp({ args: ['--no-bpf', '--allow-other'] });
  });
  afterAll(async () => {
    await cleanupKurve();
  });

  describe('attributes', () => {
    it('chmod changes the permission bits', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      await fsp.chmod(p, 0o640);
      expect((await fsp.stat(p)).mode & 0o7777).toBe(0o640);
    });
    it('chmod keeps the file type', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      await fsp.chmod(p, 0o4755);
      const st = await fsp.stat(p);
      expect(st.isFile()).toBe(true);
      expect(st.mode & 0o7777).toBe(0o4755);
    });
    it('chown (as root) changes owner and group', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      await fsp.chown(p, 1234, 5678);
      const st = await fsp.stat(p);
      expect([st.uid, st.gid]).toEqual([1234, 5678]);
    });
    it('utimes sets atime and mtime', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      await fsp.utimes(p, 1_000_000, 2_000_000);
      const st = await fsp.stat(p);
      expect([st.atimeMs, st.mtimeMs]).toEqual([1_000_000_000, 2_000_000_000]);
    });
    it('nanosecond timestamps are kept', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      const r = py(`
p = ${J(p)}
os.utime(p, ns=(1_500_000_000_123_456_789, 1_600_000_000_987_654_321))
st = os.stat(p)
out([st.st_atime_ns, st.st_mtime_ns])`);
      expect(r).toEqual([1_500_000_000_123_456_789, 1_600_000_000_987_654_321]);
    });
    it('UTIME_NOW sets the time to now', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      await fsp.utimes(p, 1000, 1000);
      const r = py(`
import time
t = (TS * 2)(TS(0, (1 << 30) - 1), TS(0, (1 << 30) - 1))
C(libc.utimensat(-100, ${J(p)}.encode(), t, 0))
st = os.stat(${J(p)})
out([abs(st.st_mtime - time.time()) < 5, abs(st.st_atime - time.time()) < 5])`);
      expect(r).toEqual([true, true]);
    });
    it('UTIME_OMIT leaves that time alone', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      await fsp.utimes(p, 1000, 2000);
      const r = py(`
t = (TS * 2)(TS(3000, 0), TS(0, (1 << 30) - 2))
C(libc.utimensat(-100, ${J(p)}.encode(), t, 0))
st = os.stat(${J(p)})
out([int(st.st_atime), int(st.st_mtime)])`);
      expect(r).toEqual([3000, 2000]);
    });
    it('a write moves mtime forward', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'a');
      await fsp.utimes(p, 1000, 1000);
      await fsp.appendFile(p, 'b');
      expect((await fsp.stat(p)).mtimeMs).toBeGreaterThan(Date.now() - 60_000);
    });
    it('chmod moves ctime forward', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      const before = (await fsp.stat(p)).ctimeMs;
      await new Promise((r) => setTimeout(r, 20));
      await fsp.chmod(p, 0o600);
      expect((await fsp.stat(p)).ctimeMs).toBeGreaterThan(before);
    });
    it('stat reports the size after a write', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(12345, 1));
      expect((await fsp.stat(p)).size).toBe(12345);
    });
    it('fstat on an open descriptor sees the size grow before close', async () => {
      const p = path.join(await fresh(), 'f');
      const fh = await fsp.open(p, 'w');
      await fh.write(Buffer.alloc(5000, 2));
      expect((await fh.stat()).size).toBe(5000);
      await fh.close();
    });
    it('the inode number is stable across lookups', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      const a = (await fsp.stat(p)).ino;
      await fsp.rename(p, `${p}2`);
      expect((await fsp.stat(`${p}2`)).ino).toBe(a);
    });
    it('stat of a missing name is ENOENT', async () => {
      expect(await code(fsp.stat(path.join(await fresh(), 'nope')))).toBe('ENOENT');
    });
    it('a new file takes the creator\'s uid and gid', async () => {
      const d = await fresh(0o777);
      const r = py(`open(${J(path.join(d, 'mine'))}, 'w').close(); st = os.stat(${J(path.join(d, 'mine'))}); out([st.st_uid, st.st_gid])`, NOBODY);
      expect(r).toEqual([65534, 65534]);
    });
    it('a new directory takes the creator\'s uid', async () => {
      const d = await fresh(0o777);
      const r = py(`os.mkdir(${J(path.join(d, 'sub'))}); out(os.stat(${J(path.join(d, 'sub'))}).st_uid)`, NOBODY);
      expect(r).toBe(65534);
    });
  });

  describe('special files', () => {
    it('mknod makes a fifo', async () => {
      const d = await fresh();
      const r = py(`os.mkfifo(${J(path.join(d, 'p'))}, 0o600); out(stat.S_ISFIFO(os.stat(${J(path.join(d, 'p'))}).st_mode))`);
      expect(r).toBe(true);
    });
    it('a fifo passes data between a writer and a reader', async () => {
      const d = await fresh();
      const r = py(`
p = ${J(path.join(d, 'p'))}
os.mkfifo(p)
if os.fork() == 0:
    with open(p, 'w') as w: w.write('through the pipe')
    os._exit(0)
with open(p) as rd: got = rd.read()
os.wait()
out(got)`);
      expect(r).toBe('through the pipe');
    });
    it('mknod of a character device keeps rdev', async () => {
      const d = await fresh();
      const r = py(`
p = ${J(path.join(d, 'null'))}
os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
st = os.stat(p)
out([stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)])`);
      expect(r).toEqual([true, 1, 3]);
    });
    it('mknod of an existing name is EEXIST', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'f'), '');
      expect(py(`out(E(os.mkfifo, ${J(path.join(d, 'f'))}))`)).toBe('EEXIST');
    });
  });

  describe('permissions as a non-root user', () => {
    it('reading a 0600 root file is EACCES', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'secret'), 's', { mode: 0o600 });
      expect(py(`out(E(lambda: open(${J(path.join(d, 'secret'))}).read()))`, NOBODY)).toBe('EACCES');
    });
    it('writing a 0644 root file is EACCES', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'f'), 'x', { mode: 0o644 });
      expect(py(`out(E(lambda: open(${J(path.join(d, 'f'))}, 'w')))`, NOBODY)).toBe('EACCES');
    });
    it('reading a 0644 root file works', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'f'), 'public', { mode: 0o644 });
      expect(py(`out(open(${J(path.join(d, 'f'))}).read())`, NOBODY)).toBe('public');
    });
    it('creating in a 0755 root directory is EACCES', async () => {
      const d = await fresh(0o755);
      expect(py(`out(E(lambda: open(${J(path.join(d, 'new'))}, 'w')))`, NOBODY)).toBe('EACCES');
    });
    it('unlinking in a 0755 root directory is EACCES', async () => {
      const d = await fresh(0o755);
      await fsp.writeFile(path.join(d, 'f'), '');
      expect(py(`out(E(os.unlink, ${J(path.join(d, 'f'))}))`, NOBODY)).toBe('EACCES');
    });
    it('a sticky directory protects other users\' files (EPERM)', async () => {
      const d = await fresh(0o1777);
      await fsp.writeFile(path.join(d, 'roots'), '');
      expect(py(`out(E(os.unlink, ${J(path.join(d, 'roots'))}))`, NOBODY)).toBe('EPERM');
    });
    it('chmod of someone else\'s file is EPERM', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'f'), '');
      expect(py(`out(E(os.chmod, ${J(path.join(d, 'f'))}, 0o777))`, NOBODY)).toBe('EPERM');
    });
    it('chown is EPERM', async () => {
      const d = await fresh(0o777);
      const r = py(`
p = ${J(path.join(d, 'mine'))}
open(p, 'w').close()
out(E(os.chown, p, 0, 0))`, NOBODY);
      expect(r).toBe('EPERM');
    });
    it('traversing a 0700 root directory is EACCES', async () => {
      const d = await fresh(0o700);
      await fsp.writeFile(path.join(d, 'f'), '');
      expect(py(`out(E(os.stat, ${J(path.join(d, 'f'))}))`, NOBODY)).toBe('EACCES');
    });
    it('listing a 0711 directory is EACCES but a known name resolves', async () => {
      const d = await fresh(0o711);
      await fsp.writeFile(path.join(d, 'known'), 'k', { mode: 0o644 });
      const r = py(`out([E(os.listdir, ${J(d)}), open(${J(path.join(d, 'known'))}).read()])`, NOBODY);
      expect(r).toEqual(['EACCES', 'k']);
    });
    it('the owner can chmod its own file', async () => {
      const d = await fresh(0o777);
      const r = py(`
p = ${J(path.join(d, 'own'))}
open(p, 'w').close()
os.chmod(p, 0o600)
out(oct(os.stat(p).st_mode & 0o777))`, NOBODY);
      expect(r).toBe('0o600');
    });
    it('utimes with explicit times on a file you do not own is EPERM', async () => {
      const d = await fresh();
      await fsp.writeFile(path.join(d, 'f'), '', { mode: 0o666 });
      expect(py(`out(E(os.utime, ${J(path.join(d, 'f'))}, (1, 1)))`, NOBODY)).toBe('EPERM');
    });
  });

  describe('xattrs', () => {
    it('set and get', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`os.setxattr(${J(p)}, 'user.color', b'blue'); out(os.getxattr(${J(p)}, 'user.color').decode())`)).toBe('blue');
    });
    it('get of a missing attribute is ENODATA', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`out(E(os.getxattr, ${J(p)}, 'user.none'))`)).toBe('ENODATA');
    });
    it('list shows every name', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`
p = ${J(p)}
os.setxattr(p, 'user.a', b'1'); os.setxattr(p, 'user.b', b'2')
out(sorted(os.listxattr(p)))`)).toEqual(['user.a', 'user.b']);
    });
    it('remove then get is ENODATA', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`
p = ${J(p)}
os.setxattr(p, 'user.a', b'1'); os.removexattr(p, 'user.a')
out([E(os.getxattr, p, 'user.a'), os.listxattr(p)])`)).toEqual(['ENODATA', []]);
    });
    it('remove of a missing attribute is ENODATA', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`out(E(os.removexattr, ${J(p)}, 'user.none'))`)).toBe('ENODATA');
    });
    it('XATTR_CREATE on an existing attribute is EEXIST', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`
p = ${J(p)}
os.setxattr(p, 'user.a', b'1')
out(E(os.setxattr, p, 'user.a', b'2', os.XATTR_CREATE))`)).toBe('EEXIST');
    });
    it('XATTR_REPLACE on a missing attribute is ENODATA', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`out(E(os.setxattr, ${J(p)}, 'user.a', b'2', os.XATTR_REPLACE))`)).toBe('ENODATA');
    });
    it('getxattr with size 0 returns the size needed', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`
p = ${J(p)}
os.setxattr(p, 'user.long', b'x' * 1000)
out(C(libc.getxattr(p.encode(), b'user.long', None, 0)))`)).toBe(1000);
    });
    it('getxattr into a too small buffer is ERANGE', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`
p = ${J(p)}
os.setxattr(p, 'user.long', b'x' * 1000)
buf = ctypes.create_string_buffer(10)
out(E(lambda: C(libc.getxattr(p.encode(), b'user.long', buf, 10))))`)).toBe('ERANGE');
    });
    it('listxattr with size 0 returns the size needed', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`
p = ${J(p)}
os.setxattr(p, 'user.a', b'1'); os.setxattr(p, 'user.bb', b'2')
out(C(libc.listxattr(p.encode(), None, 0)))`)).toBe('user.a\0user.bb\0'.length);
    });
    it('binary values round-trip', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`
p = ${J(p)}
v = bytes(range(256))
os.setxattr(p, 'user.bin', v)
out(os.getxattr(p, 'user.bin') == v)`)).toBe(true);
    });
    it('xattrs on a directory', async () => {
      const d = await fresh();
      expect(py(`os.setxattr(${J(d)}, 'user.dir', b'yes'); out(os.getxattr(${J(d)}, 'user.dir').decode())`)).toBe('yes');
    });
    it('POSIX ACLs and SELinux labels are not supported: set, get and remove are EOPNOTSUPP (python: ENOTSUP)', async () => {
      const d = await fresh();
      const p = path.join(d, 'f');
      await fsp.writeFile(p, '');
      // A well-formed ACL (user::rw- group::r-- other::r--), so the kernel passes it on to Kurve.
      expect(py(`
import struct
acl = struct.pack('<I', 2) + b''.join(struct.pack('<HHI', t, m, 0xffffffff) for t, m in [(1, 6), (4, 4), (0x20, 4)])
r = []
for f, n in [(${J(p)}, 'system.posix_acl_access'), (${J(d)}, 'system.posix_acl_default'), (${J(p)}, 'security.selinux')]:
    r.append([E(os.setxattr, f, n, acl), E(os.getxattr, f, n), E(os.removexattr, f, n)])
out(r)`)).toEqual([['ENOTSUP', 'ENOTSUP', 'ENOTSUP'], ['ENOTSUP', 'ENOTSUP', 'ENOTSUP'], ['ENOTSUP', 'ENOTSUP', 'ENOTSUP']]);
    });
    it('other security.* and trusted.* xattrs still work (as root), and unsupported names are not listed', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`
p = ${J(p)}
os.setxattr(p, 'security.kurve-test', b's'); os.setxattr(p, 'trusted.t', b't'); os.setxattr(p, 'user.u', b'u')
out([os.getxattr(p, 'security.kurve-test').decode(), os.getxattr(p, 'trusted.t').decode(), sorted(os.listxattr(p))])`))
        .toEqual(['s', 't', ['security.kurve-test', 'trusted.t', 'user.u']]);
    });
    it('repeated misses and a later set: the name appears at once', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(py(`
p = ${J(p)}
a = [E(os.getxattr, p, 'user.late') for _ in range(3)]
os.setxattr(p, 'user.late', b'now')
out(a + [os.getxattr(p, 'user.late').decode()])`)).toEqual(['ENODATA', 'ENODATA', 'ENODATA', 'now']);
    });
    it('a non-owner cannot set user xattrs on a 0644 file (EACCES)', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '', { mode: 0o644 });
      expect(py(`out(E(os.setxattr, ${J(p)}, 'user.x', b'1'))`, NOBODY)).toBe('EACCES');
    });
  });

  describe('fallocate and SEEK_DATA/SEEK_HOLE', () => {
    it('mode 0 extends the size; the new range reads as zeros', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'ab');
      const r = py(`
fd = os.open(${J(p)}, os.O_RDWR)
C(libc.fallocate(fd, 0, 0, 10000))
os.close(fd)
b = open(${J(p)}, 'rb').read()
out([len(b), b[:2].decode(), b[2:] == bytes(9998)])`);
      expect(r).toEqual([10000, 'ab', true]);
    });
    it('KEEP_SIZE does not change the size', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'ab');
      const r = py(`
fd = os.open(${J(p)}, os.O_RDWR)
C(libc.fallocate(fd, 1, 0, 10000))
os.close(fd)
out(os.stat(${J(p)}).st_size)`);
      expect(r).toBe(2);
    });
    it('PUNCH_HOLE zeros the range and keeps the size', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(20000, 0x41));
      const r = py(`
fd = os.open(${J(p)}, os.O_RDWR)
C(libc.fallocate(fd, 3, 4096, 8192))
os.close(fd)
b = open(${J(p)}, 'rb').read()
out([len(b), b[:4096] == b'A' * 4096, b[4096:12288] == bytes(8192), b[12288:] == b'A' * (20000 - 12288)])`);
      expect(r).toEqual([20000, true, true, true]);
    });
    it('a punched hole survives close and reopen from the metaserver copy', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(9 * MiB, 0x42));
      py(`
fd = os.open(${J(p)}, os.O_RDWR)
C(libc.fallocate(fd, 3, ${4 * MiB}, ${4 * MiB}))
os.close(fd)
out(0)`);
      const b = await fsp.readFile(p);
      expect(b.length).toBe(9 * MiB);
      expect(b.subarray(4 * MiB, 8 * MiB).every((x) => x === 0)).toBe(true);
      expect(b[4 * MiB - 1]).toBe(0x42);
      expect(b[8 * MiB]).toBe(0x42);
    });
    it('ZERO_RANGE zeros the range; past the end it extends the size, unless KEEP_SIZE', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(5 * MiB, 0x43));
      const r = py(`
fd = os.open(${J(p)}, os.O_RDWR)
C(libc.fallocate(fd, 0x10, 4096, ${4 * MiB}))
mid = os.fstat(fd).st_size
C(libc.fallocate(fd, 0x10 | 1, ${5 * MiB - 10}, 100))
kept = os.fstat(fd).st_size
C(libc.fallocate(fd, 0x10, ${5 * MiB - 10}, 100))
os.close(fd)
b = open(${J(p)}, 'rb').read()
out([mid, kept, len(b), b[:4096] == b'C' * 4096, b[4096:4096 + ${4 * MiB}] == bytes(${4 * MiB}),
     b[4096 + ${4 * MiB}:${5 * MiB - 10}] == b'C' * (${MiB - 4106}), b[${5 * MiB - 10}:] == bytes(100)])`);
      expect(r).toEqual([5 * MiB, 5 * MiB, 5 * MiB + 90, true, true, true, true]);
      // From the metaserver's copy too: another open after the cache lets it go is the same.
      const again = await fsp.readFile(p);
      expect(again.length).toBe(5 * MiB + 90);
      expect(again.subarray(4096, 4096 + 4 * MiB).every((x) => x === 0)).toBe(true);
    });
    it('unsupported fallocate modes are EOPNOTSUPP (errno 95, which python names ENOTSUP)', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(8192, 0x61));
      expect(py(`
fd = os.open(${J(p)}, os.O_RDWR)
r = [E(lambda: C(libc.fallocate(fd, 0x08, 0, 4096))), E(lambda: C(libc.fallocate(fd, 0x20, 0, 4096)))]
os.close(fd)
out(r)`)).toEqual(['ENOTSUP', 'ENOTSUP']);
    });
    it('SEEK_DATA/SEEK_HOLE find the written ranges of a sparse file (to the page, from the local copy)', async () => {
      const p = path.join(await fresh(), 'f');
      const r = py(`
fd = os.open(${J(p)}, os.O_RDWR | os.O_CREAT)
os.pwrite(fd, b'x' * 4096, 0)
os.pwrite(fd, b'y' * 4096, ${8 * MiB})
os.ftruncate(fd, ${12 * MiB})
os.close(fd)
fd = os.open(${J(p)}, os.O_RDONLY)
res = [os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 0, os.SEEK_HOLE), os.lseek(fd, ${4 * MiB}, os.SEEK_DATA), os.lseek(fd, ${8 * MiB}, os.SEEK_HOLE), E(os.lseek, fd, ${9 * MiB}, os.SEEK_DATA)]
os.close(fd)
out(res)`);
      // The writer's local backing file knows the 4 KiB extents; nothing is written past 8 MiB + 4 KiB.
      expect(r).toEqual([0, 4096, 8 * MiB, 8 * MiB + 4096, 'ENXIO']);
    });
    it('SEEK_DATA at or past EOF is ENXIO', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'abc');
      expect(py(`
fd = os.open(${J(p)}, os.O_RDONLY)
r = [E(os.lseek, fd, 3, os.SEEK_DATA), E(os.lseek, fd, 100, os.SEEK_HOLE)]
os.close(fd)
out(r)`)).toEqual(['ENXIO', 'ENXIO']);
    });
    it('SEEK_HOLE in a dense file is its size', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(5000, 1));
      expect(py(`
fd = os.open(${J(p)}, os.O_RDONLY)
r = os.lseek(fd, 10, os.SEEK_HOLE)
os.close(fd)
out(r)`)).toBe(5000);
    });
  });

  describe('mmap', () => {
    it('a read-only mapping sees the file', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'mapped content');
      expect(py(`
with open(${J(p)}, 'rb') as f:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    out(m[:].decode())`)).toBe('mapped content');
    });
    it('a MAP_SHARED store is seen by read() after msync', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(8192, 0x2e));
      expect(py(`
fd = os.open(${J(p)}, os.O_RDWR)
m = mmap.mmap(fd, 8192)
m[100:105] = b'HELLO'
m.flush()
got = os.pread(fd, 5, 100)
m.close(); os.close(fd)
out(got.decode())`)).toBe('HELLO');
    });
    it('write() after mapping shows in the mapping', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(4096, 0x2e));
      expect(py(`
fd = os.open(${J(p)}, os.O_RDWR)
m = mmap.mmap(fd, 4096)
os.pwrite(fd, b'WRITTEN', 10)
got = m[10:17]
m.close(); os.close(fd)
out(got.decode())`)).toBe('WRITTEN');
    });
    it('mmap stores persist after close and are read back by a new open', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(3 * MiB, 0));
      py(`
fd = os.open(${J(p)}, os.O_RDWR)
m = mmap.mmap(fd, ${3 * MiB})
for i in range(0, ${3 * MiB}, 4096):
    m[i:i+4] = b'PAGE'
m.flush(); m.close(); os.close(fd)
out(0)`);
      const b = await fsp.readFile(p);
      let ok = true;
      for (let i = 0; i < 3 * MiB; i += 4096) if (b.toString('latin1', i, i + 4) !== 'PAGE') ok = false;
      expect(ok).toBe(true);
    });
    it('a mapping of a fully cached file (passthrough) reads correctly', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(MiB, 0x51));
      await fsp.readFile(p);
      expect(py(`
with open(${J(p)}, 'rb') as f:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    out([len(m), m[0], m[-1]])`)).toEqual([MiB, 0x51, 0x51]);
    });
  });

  describe('statfs', () => {
    it('statvfs reports sizes and a 255-byte name limit', async () => {
      const r = py(`s = os.statvfs(${J(k.mountpoint)}); out([s.f_bsize > 0, s.f_blocks > 0, s.f_namemax, s.f_files > 0])`) as unknown[];
      expect(r).toEqual([true, true, 255, true]);
    });
    it('free space never exceeds total space', async () => {
      const r = py(`s = os.statvfs(${J(k.mountpoint)}); out([s.f_bfree <= s.f_blocks, s.f_bavail <= s.f_blocks])`);
      expect(r).toEqual([true, true]);
    });
  });
});
