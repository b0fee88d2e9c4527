// Kernel caching, counted: with 1 h timeouts 1000 stats cost at most one request; a fully cached
// file is read through passthrough with 0 READ requests; a listing is served from the kernel's
// readdir cache; and two mounts of one file system (kurve up + kurve mount) see each other's
// creates, renames and writes — also in cached listings — within 100 ms (change feed ->
// INVAL_ENTRY / INVAL_INODE), counted with the daemons' own per-opcode counters and, when the eBPF
// tracer loads, cross-checked with the kernel's fuse tracepoints.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveMount, kurveUp, feedQuiet, py, timeVisible } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const J = JSON.stringify;
const MiB = 1024 * 1024;

describeIf([whyNoFuse()], 'coherent long-lived kernel caching', () => {
  let a: Daemon;
  let b: Daemon;
  let c: Daemon;
  const requests = async (d: Daemon, ...ops: string[]): Promise<number> => {
    let n = 0;
    for (const op of ops) n += await d.metric('kurve_fuse_requests_total', `op="${op}"`);
    return n;
  };

  const quiet = (d: Daemon): Promise<void> => feedQuiet(d, 200);

  beforeAll(async () => {
    // BPF on where it can load (cross-check); the mount works without it.
    a = await kurveUp({ args: ['--entry-timeout', '1h', '--attr-timeout', '1h'] });
    b = await kurveMount(a, { args: ['--no-bpf', '--entry-timeout', '1h', '--attr-timeout', '1h'] });
    // Timeouts 0: the kernel asks every time, so this one exercises the daemon's own caches.
    c = await kurveMount(a, { args: ['--no-bpf', '--entry-timeout', '0', '--attr-timeout', '0'] });
  }, 60_000);
  afterAll(async () => {
    await cleanupKurve();
  });

  it('1000 x stat of a file: at most 1 GETATTR/LOOKUP after the first', async () => {
    const p = path.join(a.mountpoint, 'hot');
    await fsp.writeFile(p, 'x');
    await fsp.stat(p);
    const before = await requests(a, 'GETATTR', 'LOOKUP', 'STATX');
    const kBefore = await a.metric('kurve_kernel_fuse_requests_total', 'op="GETATTR"');
    expect(py(`
for i in range(1000):
    os.stat(${J(p)})
out(1000)`)).toBe(1000);
    const after = await requests(a, 'GETATTR', 'LOOKUP', 'STATX');
    expect(after - before).toBeLessThanOrEqual(1);
    const text = await a.metrics();
    if (text.includes('kurve_kernel_fuse_requests_total')) {
      // The kernel's own count (fuse:fuse_request_send) agrees: nothing was sent.
      const kAfter = await a.metric('kurve_kernel_fuse_requests_total', 'op="GETATTR"');
      expect(kAfter - kBefore).toBeLessThanOrEqual(1);
    }
  });

  it('a fully cached file is read with 0 READ requests (passthrough)', async () => {
    const p = path.join(a.mountpoint, 'cached.bin');
    const data = Buffer.alloc(8 * MiB + 5, 0x5a);
    await fsp.writeFile(p, data);
    const reads0 = await requests(a, 'READ');
    const pt0 = await a.metric('kurve_client_passthrough_opens_total');
    const digest = py(`
import hashlib
h = [hashlib.sha1(open(${J(p)}, 'rb').read()).hexdigest() for _ in range(3)]
out(h)`) as string[];
    expect(new Set(digest).size).toBe(1);
    expect(await requests(a, 'READ')).toBe(reads0);
    expect(await a.metric('kurve_client_passthrough_opens_total')).toBeGreaterThanOrEqual(pt0 + 3);
  });

  it('closing a read-only handle sends no FLUSH; closing a writable one still uploads at close', async () => {
    const p = path.join(a.mountpoint, 'noflush.txt');
    await fsp.writeFile(p, 'abc');
    const q = path.join(b.mountpoint, 'noflush.txt');
    const f0 = await requests(a, 'FLUSH');
    expect(py(`
n = 0
for i in range(100):
    with open(${J(p)}, 'rb') as f:
        n += len(f.read())
out(n)`)).toBe(300);
    expect(await requests(a, 'FLUSH')).toBe(f0);
    // Writable handles keep their FLUSH: close uploads, so the other mount sees the bytes at once.
    expect(py(`out(open(${J(q)}, 'rb').read().decode())`)).toBe('abc');
    const ms = timeVisible(
      `fd = os.open(${J(p)}, os.O_WRONLY); os.pwrite(fd, b'XY', 1); os.close(fd)`,
      `open(${J(q)}, 'rb').read() == b'aXY'`,
    );
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThanOrEqual(100);
    expect(await requests(a, 'FLUSH')).toBe(f0 + 1);
  });

  it('a file fetched once from the datastore is then read through passthrough', async () => {
    const p = path.join(a.mountpoint, 'remote.bin');
    await fsp.writeFile(p, Buffer.alloc(6 * MiB, 0x33));
    const q = path.join(b.mountpoint, 'remote.bin');
    const first = await requests(b, 'READ');
    expect(py(`out(len(open(${J(q)}, 'rb').read()))`)).toBe(6 * MiB);
    const second = await requests(b, 'READ');
    expect(second).toBeGreaterThan(first);
    expect(py(`out(open(${J(q)}, 'rb').read() == bytes([0x33]) * ${6 * MiB})`)).toBe(true);
    expect(await requests(b, 'READ')).toBe(second);
  });

  it('a file created through one mount is visible through the other within 100 ms', async () => {
    const pa = path.join(a.mountpoint, 'created-later');
    const pb = path.join(b.mountpoint, 'created-later');
    // B caches "no such name" (a negative entry with a 1 h timeout) first.
    expect(py(`out(E(os.stat, ${J(pb)}))`)).toBe('ENOENT');
    expect(py(`out(E(os.stat, ${J(pb)}))`)).toBe('ENOENT');
    const ms = timeVisible(`open(${J(pa)}, 'w').write('new')`, `os.path.exists(${J(pb)})`);
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThanOrEqual(100);
  });

  it('a rename through one mount is visible through the other within 100 ms', async () => {
    await fsp.writeFile(path.join(a.mountpoint, 'old-name'), 'r');
    const oldB = path.join(b.mountpoint, 'old-name');
    const newB = path.join(b.mountpoint, 'new-name');
    expect(py(`out([os.stat(${J(oldB)}).st_size, E(os.stat, ${J(newB)})])`)).toEqual([1, 'ENOENT']);
    const ms = timeVisible(
      `os.rename(${J(path.join(a.mountpoint, 'old-name'))}, ${J(path.join(a.mountpoint, 'new-name'))})`,
      `os.path.exists(${J(newB)}) and not os.path.exists(${J(oldB)})`,
    );
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThanOrEqual(100);
  });

  it('a write through one mount is visible through the other within 100 ms', async () => {
    const pa = path.join(a.mountpoint, 'shared.txt');
    const pb = path.join(b.mountpoint, 'shared.txt');
    await fsp.writeFile(pa, 'version one');
    // B reads it (page cache, attributes and a cached chunk all hold version one).
    expect(py(`out([open(${J(pb)}).read() for _ in range(2)])`)).toEqual(['version one', 'version one']);
    const ms = timeVisible(`open(${J(pa)}, 'w').write('version two, longer')`, `open(${J(pb)}).read() == 'version two, longer'`);
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThanOrEqual(100);
  });

  it('an unlink through one mount is visible through the other within 100 ms', async () => {
    await fsp.writeFile(path.join(a.mountpoint, 'doomed'), 'd');
    const pb = path.join(b.mountpoint, 'doomed');
    expect(py(`out(os.stat(${J(pb)}).st_size)`)).toBe(1);
    const ms = timeVisible(`os.unlink(${J(path.join(a.mountpoint, 'doomed'))})`, `not os.path.exists(${J(pb)})`);
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThanOrEqual(100);
  });

  it('attribute changes (chmod) through one mount show through the other within 100 ms', async () => {
    await fsp.writeFile(path.join(a.mountpoint, 'modes'), '');
    const pb = path.join(b.mountpoint, 'modes');
    expect(py(`out(oct(os.stat(${J(pb)}).st_mode & 0o777))`)).toBe('0o644');
    const ms = timeVisible(`os.chmod(${J(path.join(a.mountpoint, 'modes'))}, 0o600)`, `os.stat(${J(pb)}).st_mode & 0o777 == 0o600`);
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThanOrEqual(100);
  });

  it('an xattr set through one mount is visible through the other within 100 ms', async () => {
    await fsp.writeFile(path.join(a.mountpoint, 'xa'), '');
    for (const d of [b, c]) {
      const q = path.join(d.mountpoint, 'xa');
      expect(py(`out([E(os.getxattr, ${J(q)}, 'user.tag') for _ in range(2)])`)).toEqual(['ENODATA', 'ENODATA']);
    }
    const ms = timeVisible(`os.setxattr(${J(path.join(a.mountpoint, 'xa'))}, 'user.tag', b'v1')`,
      `os.getxattr(${J(path.join(b.mountpoint, 'xa'))}, 'user.tag') == b'v1' and os.getxattr(${J(path.join(c.mountpoint, 'xa'))}, 'user.tag') == b'v1'`);
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThanOrEqual(100);
  });

  it('a directory listing is cached by the kernel: warm readdirs send no READDIR(PLUS)', async () => {
    const d = path.join(b.mountpoint, 'listed');
    await fsp.mkdir(path.join(a.mountpoint, 'listed'));
    for (let i = 0; i < 300; i++) await fsp.writeFile(path.join(a.mountpoint, 'listed', `f${i}`), '');
    await quiet(b); // the creates' change events have reached B
    expect(py(`out(len(os.listdir(${J(d)})))`)).toBe(300);
    const before = await requests(b, 'READDIR', 'READDIRPLUS');
    expect(py(`out([len(os.listdir(${J(d)})) for _ in range(5)])`)).toEqual([300, 300, 300, 300, 300]);
    expect(await requests(b, 'READDIR', 'READDIRPLUS')).toBe(before);
    // Our own create and unlink drop the cached listing in the kernel (no notification needed).
    expect(py(`
p = ${J(d)}
open(os.path.join(p, 'mine'), 'w').close()
a = 'mine' in os.listdir(p)
os.unlink(os.path.join(p, 'mine'))
out([a, 'mine' in os.listdir(p), len(os.listdir(p))])`)).toEqual([true, false, 300]);
  });

  it('a cached listing shows a create, unlink and rename through the other mount within 100 ms', async () => {
    const da = path.join(a.mountpoint, 'listed2');
    const db = path.join(b.mountpoint, 'listed2');
    await fsp.mkdir(da);
    await fsp.writeFile(path.join(da, 'keep'), '');
    await quiet(b);
    // Cached in B's kernel (listed twice, the second from the cache).
    expect(py(`out([sorted(os.listdir(${J(db)})) for _ in range(2)])`)).toEqual([['keep'], ['keep']]);
    const steps: Array<[string, string[]]> = [
      [`open(${J(path.join(da, 'new'))}, 'w').close()`, ['keep', 'new']],
      [`os.rename(${J(path.join(da, 'new'))}, ${J(path.join(da, 'renamed'))})`, ['keep', 'renamed']],
      [`os.unlink(${J(path.join(da, 'keep'))})`, ['renamed']],
      [`os.mkdir(${J(path.join(da, 'sub'))})`, ['renamed', 'sub']],
    ];
    for (const [act, want] of steps) {
      const ms = timeVisible(act, `sorted(os.listdir(${J(db)})) == ${J(want)}`);
      expect({ act, ms: ms >= 0 && ms <= 100 }).toEqual({ act, ms: true });
      // And it is cached again afterwards (once the act's last event, e.g. a rename's second, is in).
      await quiet(b);
      expect(py(`out(sorted(os.listdir(${J(db)})))`)).toEqual(want);
      const before = await requests(b, 'READDIR', 'READDIRPLUS');
      expect(py(`out(sorted(os.listdir(${J(db)})))`)).toEqual(want);
      expect(await requests(b, 'READDIR', 'READDIRPLUS')).toBe(before);
    }
    expect(await b.metric('kurve_client_invalidations_total', 'kind="dir"')).toBeGreaterThan(0);
  });

  it('listings through one mount while the other creates and unlinks: the final listing is exact within 100 ms', async () => {
    const da = path.join(a.mountpoint, 'churn');
    const db = path.join(b.mountpoint, 'churn');
    await fsp.mkdir(da);
    // B lists continuously (filling and refilling its kernel's listing cache, racing every
    // invalidation) while A creates 300 names and unlinks every third; then B must converge.
    const r = py(`
import threading, time
da, db = ${J(da)}, ${J(db)}
stop = False
lists = 0
def lister():
    global lists
    while not stop:
        os.listdir(db)
        lists += 1
t = threading.Thread(target=lister)
t.start()
for i in range(300):
    open(os.path.join(da, 'c%d' % i), 'w').close()
    if i % 3 == 2:
        os.unlink(os.path.join(da, 'c%d' % (i - 1)))
want = sorted(os.listdir(da))
stop = True
t.join()
t0 = time.monotonic()
seen = -1
while time.monotonic() - t0 < 3:
    if sorted(os.listdir(db)) == want:
        seen = (time.monotonic() - t0) * 1000
        break
    time.sleep(0.002)
out([len(want), lists > 10, seen])`, { timeoutMs: 60_000 }) as [number, boolean, number];
    expect(r[0]).toBe(200);
    expect(r[1]).toBe(true);
    expect(r[2]).toBeGreaterThanOrEqual(0);
    expect(r[2]).toBeLessThanOrEqual(100);
    // And it stays exact (no stale cache refilled after the last invalidation).
    await quiet(b);
    expect(py(`out(len(os.listdir(${J(db)})))`)).toBe(200);
  });

  it('`ls -l` of a directory asks the daemon for the ACL and SELinux xattrs once, not per file', async () => {
    const d = path.join(a.mountpoint, 'listed');
    const before = await requests(a, 'GETXATTR');
    const r = py(`
import subprocess
res = subprocess.run(['ls', '-l', ${J(d)}], capture_output=True, text=True)
out([res.returncode, len(res.stdout.splitlines())])`) as number[];
    expect(r).toEqual([0, 301]); // "total" + 300 files
    // GNU ls remembers a device that answered EOPNOTSUPP (coreutils ls.c: getfilecon_cache, file_has_acl_cache).
    expect(await requests(a, 'GETXATTR') - before).toBeLessThanOrEqual(3);
  });

  it('one open mode per inode: a writer joins passthrough readers, and its writes are uploaded', async () => {
    const pa = path.join(a.mountpoint, 'mixed.bin');
    await fsp.writeFile(pa, Buffer.alloc(MiB, 0x41));
    const r = py(`
p = ${J(pa)}
rd = os.open(p, os.O_RDONLY)          # fully cached: passthrough
wr = os.open(p, os.O_RDWR)            # must join passthrough (a daemon-mode open would get EIO)
os.pwrite(wr, b'JOINED', 1000)
seen = os.pread(rd, 6, 1000)
os.pwrite(wr, b'Z' * 10, ${MiB})      # grows the file
os.close(wr); os.close(rd)
out([seen.decode(), os.stat(p).st_size])`);
    expect(r).toEqual(['JOINED', MiB + 10]);
    // Close uploaded what the kernel wrote to the backing file: the other mount reads it.
    const pb = path.join(b.mountpoint, 'mixed.bin');
    expect(py(`
b = open(${J(pb)}, 'rb').read()
out([len(b), b[1000:1006].decode(), b[-10:].decode()])`)).toEqual([MiB + 10, 'JOINED', 'ZZZZZZZZZZ']);
  });

  it('one open mode per inode: a reader joins a daemon-mode writer', async () => {
    const pa = path.join(a.mountpoint, 'writer-first.txt');
    const r = py(`
p = ${J(pa)}
wr = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
os.write(wr, b'written before the reader')
rd = os.open(p, os.O_RDONLY)
got = os.read(rd, 100)
os.close(rd); os.close(wr)
out(got.decode())`);
    expect(r).toBe('written before the reader');
  });

  it('with kernel timeouts 0 the daemon\'s own entry/attr caches stay coherent too', async () => {
    const pa = (n: string): string => path.join(a.mountpoint, n);
    const pc = (n: string): string => path.join(c.mountpoint, n);
    expect(py(`out([E(os.stat, ${J(pc('zero-t'))}) for _ in range(3)])`)).toEqual(['ENOENT', 'ENOENT', 'ENOENT']);
    const steps: Array<[string, string]> = [
      [`open(${J(pa('zero-t'))}, 'w').write('abc')`, `os.stat(${J(pc('zero-t'))}).st_size == 3`],
      [`os.chmod(${J(pa('zero-t'))}, 0o600)`, `os.stat(${J(pc('zero-t'))}).st_mode & 0o777 == 0o600`],
      [`open(${J(pa('zero-t'))}, 'a').write('defg')`, `os.stat(${J(pc('zero-t'))}).st_size == 7`],
      [`os.rename(${J(pa('zero-t'))}, ${J(pa('zero-t2'))})`, `not os.path.exists(${J(pc('zero-t'))}) and os.path.exists(${J(pc('zero-t2'))})`],
      [`os.unlink(${J(pa('zero-t2'))})`, `not os.path.exists(${J(pc('zero-t2'))})`],
    ];
    for (const [act, check] of steps) {
      // Warm the daemon's caches with the current state first.
      py(`
for _ in range(3):
    try: os.stat(${J(pc('zero-t'))}); os.stat(${J(pc('zero-t2'))})
    except OSError: pass
out(0)`);
      const ms = timeVisible(act, check);
      expect({ act, ms: ms >= 0 && ms <= 100 }).toEqual({ act, ms: true });
    }
    expect(await c.metric('kurve_fuse_requests_total', 'op="GETATTR"')).toBeGreaterThan(0);
  });

  it('the other mount sent precise invalidations, not a flush of everything', async () => {
    expect(await b.metric('kurve_client_invalidations_total', 'kind="entry"')).toBeGreaterThan(0);
    expect(await b.metric('kurve_client_invalidations_total', 'kind="data"')).toBeGreaterThan(0);
    expect(await b.metric('kurve_client_invalidations_total', 'kind="reset"')).toBe(0);
    expect(await b.metric('kurve_client_feed_connected')).toBe(1);
  });
});
