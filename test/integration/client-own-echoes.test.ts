// Our own changes come back through the change feed too; the kernel learned of them from our
// replies, so their echoes must cost no notification (a write(2) to /dev/fuse each): chmod, utimes,
// chown and xattr changes (two per file of a `cp -a`), the inode an unlink or rmdir removes (one
// per file of an `rm -rf`), and the purge after the unlink grace of files the kernel has already
// forgotten. Counted with the daemon's kurve_client_invalidations_total; the second mount must
// still see every one of those changes within 100 ms.
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveMount, kurveUp, feedQuiet, py, sleep, timeVisible } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const J = JSON.stringify;
const FILES = 40;

describeIf([whyNoFuse()], 'echoes of our own changes', () => {
  let a: Daemon;
  let b: Daemon;
  const attrInvals = (d: Daemon): Promise<number> => d.metric('kurve_client_invalidations_total', 'kind="attr"');

  const quiet = (d: Daemon): Promise<void> => feedQuiet(d, 300);
  const within100 = (ms: number): boolean => ms >= 0 && ms <= 100;

  /** A directory (and a subdirectory) of FILES files with data, written through `a`. */
  const makeTree = (dir: string): void => {
    py(`
d = ${J(dir)}
os.makedirs(os.path.join(d, 'sub'))
for i in range(${FILES}):
    with open(os.path.join(d, 'sub' if i % 2 else '', 'f%d' % i), 'wb') as f:
        f.write(b'x' * (1000 + i))
out(0)`);
  };

  beforeAll(async () => {
    a = await kurveUp({ args: ['--no-bpf', '--unlink-grace', '1s'] });
    b = await kurveMount(a);
  }, 60_000);
  afterAll(async () => {
    await cleanupKurve();
  });

  it('chmod, utimes, chown, setxattr and removexattr of our files: no attr invalidation, seen by the other mount', async () => {
    const dir = path.join(a.mountpoint, 'attrs');
    makeTree(dir);
    await quiet(a);
    const last = path.join('sub', `f${FILES - 1}`);
    const other = path.join(b.mountpoint, 'attrs', last);
    // The other mount's kernel caches the old attributes first.
    expect(py(`out(os.stat(${J(other)}).st_mode & 0o777)`)).toBe(0o644);
    const before = await attrInvals(a);
    const ms = timeVisible(`
d = ${J(dir)}
for i in range(${FILES}):
    p = os.path.join(d, 'sub' if i % 2 else '', 'f%d' % i)
    os.chmod(p, 0o600)
    os.utime(p, ns=(1500000000123456789, 1500000000123456789))
    os.chown(p, 0, 0)
    os.setxattr(p, 'user.k', b'v')
    os.removexattr(p, 'user.k')
    os.setxattr(p, 'user.kept', b'w')`, `os.stat(${J(other)}).st_mode & 0o777 == 0o600 and os.stat(${J(other)}).st_mtime_ns == 1500000000123456789 and os.getxattr(${J(other)}, 'user.kept') == b'w'`);
    expect(within100(ms)).toBe(true);
    await quiet(a);
    expect((await attrInvals(a)) - before).toBe(0);
    // Our own kernel has the new attributes without being told.
    expect(py(`
st = os.stat(${J(path.join(dir, last))})
out([st.st_mode & 0o777, st.st_mtime_ns, st.st_uid])`)).toEqual([0o600, 1500000000123456789, 0]);
  });

  it('rm -rf of our tree, and the purges after the unlink grace: no attr invalidation, seen by the other mount', async () => {
    const dir = path.join(a.mountpoint, 'rm');
    makeTree(dir);
    // The other mount caches the tree (its kernel must be told it is gone).
    expect(py(`out(sum(len(fs) for _, _, fs in os.walk(${J(path.join(b.mountpoint, 'rm'))})))`)).toBe(FILES);
    await quiet(a);
    const before = await attrInvals(a);
    const ms = timeVisible(`
import shutil
shutil.rmtree(${J(dir)})`, `not os.path.exists(${J(path.join(b.mountpoint, 'rm'))})`);
    expect(within100(ms)).toBe(true);
    expect(py(`out(os.path.exists(${J(dir)}))`)).toBe(false);
    await quiet(a);
    expect((await attrInvals(a)) - before).toBe(0);
    // The unlink grace (1 s) ends: every file is purged (one attr event each), none is held.
    await sleep(2500);
    await quiet(a);
    expect((await attrInvals(a)) - before).toBe(0);
    expect(await a.metric('kurve_client_change_events_total', 'kind="attr"')).toBeGreaterThan(FILES * 2);
  });

  it('a file unlinked while open keeps its data, and a chmod through the other mount still reaches our kernel', async () => {
    const p = path.join(a.mountpoint, 'open-unlinked');
    const q = path.join(a.mountpoint, 'chmod-me');
    py(`
open(${J(q)}, 'w').write('q')
os.stat(${J(q)})
out(0)`);
    const r = py(`
import time
fd = os.open(${J(p)}, os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b'still here')
os.unlink(${J(p)})
time.sleep(2.5)
os.lseek(fd, 0, 0)
got = os.read(fd, 100)
os.close(fd)
out(got.decode())`);
    expect(r).toBe('still here');
    expect(within100(timeVisible(`os.chmod(${J(path.join(b.mountpoint, 'chmod-me'))}, 0o640)`, `os.stat(${J(q)}).st_mode & 0o777 == 0o640`))).toBe(true);
  });
});
