// Writable passthrough for opens with O_TRUNC of empty files (new or truncated): the kernel writes
// straight into the local backing file and no WRITE reaches the daemon; close uploads what was
// written, so another mount reads it (close-to-open); fsync makes it durable across a kill -9;
// every open of the inode shares one mode; O_SYNC/O_DSYNC opens, creates without O_TRUNC and
// non-empty files keep the daemon path.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveMount, kurveRun, kurveUp, py, tempDir } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const J = JSON.stringify;
const MiB = 1024 * 1024;

describeIf([whyNoFuse()], 'writable passthrough for empty files', () => {
  let a: Daemon;
  let b: Daemon;
  const writes = (d: Daemon): Promise<number> => d.metric('kurve_fuse_requests_total', 'op="WRITE"');
  const ptOpens = (d: Daemon): Promise<number> => d.metric('kurve_client_passthrough_opens_total');

  beforeAll(async () => {
    a = await kurveUp();
    b = await kurveMount(a);
  }, 60_000);
  afterAll(async () => {
    await cleanupKurve();
  });

  it('a new file is written with 0 WRITE requests; stat sees its size while open; the other mount reads it after close', async () => {
    const pa = path.join(a.mountpoint, 'pt-new.bin');
    const w0 = await writes(a);
    const o0 = await ptOpens(a);
    const r = py(`
import time
p = ${J(pa)}
fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
m0 = os.stat(p).st_mtime_ns
for i in range(9):
    os.write(fd, bytes([65 + i]) * ${MiB})
time.sleep(0.02)
os.write(fd, b'tail')
st = os.stat(p)
os.close(fd)
out([st.st_size, st.st_mtime_ns > m0, os.stat(p).st_size])`) as [number, boolean, number];
    expect(r).toEqual([9 * MiB + 4, true, 9 * MiB + 4]);
    expect(await writes(a)).toBe(w0);
    expect(await ptOpens(a)).toBe(o0 + 1);
    const pb = path.join(b.mountpoint, 'pt-new.bin');
    const got = await fsp.readFile(pb);
    expect(got.length).toBe(9 * MiB + 4);
    for (let i = 0; i < 9; i++) expect(got[i * MiB] === 65 + i && got[(i + 1) * MiB - 1] === 65 + i).toBe(true);
    expect(got.subarray(9 * MiB).toString()).toBe('tail');
    // Read back on the writer's side: the chunks are local, so this is a passthrough read too.
    expect((await fsp.readFile(pa)).equals(got)).toBe(true);
  });

  it('the same through `kurve mount` (chunks uploaded over gRPC): the `kurve up` side reads it after close', async () => {
    const pb = path.join(b.mountpoint, 'pt-from-b.bin');
    const w0 = await writes(b);
    const data = Buffer.alloc(6 * MiB + 123);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
    await fsp.writeFile(pb, data);
    expect(await writes(b)).toBe(w0);
    expect((await fsp.readFile(path.join(a.mountpoint, 'pt-from-b.bin'))).equals(data)).toBe(true);
  });

  it('O_TRUNC of an existing file takes passthrough; the other mount sees only the new content', async () => {
    const pa = path.join(a.mountpoint, 'pt-trunc.txt');
    await fsp.writeFile(pa, Buffer.alloc(5 * MiB, 0x61));
    const o0 = await ptOpens(a);
    await fsp.writeFile(pa, 'short now');
    expect(await ptOpens(a)).toBe(o0 + 1);
    expect(await fsp.readFile(path.join(b.mountpoint, 'pt-trunc.txt'), 'utf8')).toBe('short now');
  });

  it('a sparse file written through passthrough stays sparse (holes are not uploaded)', async () => {
    const pa = path.join(a.mountpoint, 'pt-sparse.bin');
    py(`
fd = os.open(${J(pa)}, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.pwrite(fd, b'start', 0)
os.pwrite(fd, b'end', ${12 * MiB})
os.close(fd)
out('ok')`);
    const r = py(`
fd = os.open(${J(path.join(b.mountpoint, 'pt-sparse.bin'))}, os.O_RDONLY)
res = [os.fstat(fd).st_size, os.lseek(fd, 0, os.SEEK_HOLE), os.lseek(fd, ${5 * MiB}, os.SEEK_DATA), os.pread(fd, 5, 0).decode(), os.pread(fd, 3, ${12 * MiB}).decode(), os.pread(fd, 4, ${6 * MiB}) == bytes(4)]
os.close(fd)
out(res)`);
    // Chunk 0 is stored up to the end of its written block ('start'), so the hole begins at 4 KiB.
    expect(r).toEqual([12 * MiB + 3, 4096, 12 * MiB, 'start', 'end', true]);
  });

  it('ftruncate, fallocate and lseek on a file open for passthrough writes act on what the kernel wrote', async () => {
    const pa = path.join(a.mountpoint, 'pt-setsize.bin');
    const r = py(`
p = ${J(pa)}
fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.write(fd, b'a' * ${5 * MiB})
os.ftruncate(fd, 0)                               # must not be taken for a no-op
s0 = os.fstat(fd).st_size
os.write(fd, b'b' * ${9 * MiB})                   # at offset 5 MiB: [0, 5 MiB) reads as zeros
os.ftruncate(fd, ${7 * MiB})
s1 = os.fstat(fd).st_size
C(libc.fallocate(fd, 0, 0, ${MiB}))               # mode 0 inside the file: the size stays
s2 = os.fstat(fd).st_size
C(libc.fallocate(fd, 3, ${6 * MiB}, 10))          # punch 10 bytes of written data
hole = os.pread(fd, 12, ${6 * MiB} - 1)
data = os.lseek(fd, 0, os.SEEK_DATA)
os.close(fd)
out([s0, s1, s2, list(hole), data])`) as [number, number, number, number[], number];
    expect(r.slice(0, 3)).toEqual([0, 7 * MiB, 7 * MiB]);
    expect(r[3]).toEqual([0x62, ...Array(10).fill(0), 0x62]);
    expect(r[4]).toBeLessThanOrEqual(5 * MiB);
    const got = await fsp.readFile(path.join(b.mountpoint, 'pt-setsize.bin'));
    expect(got.length).toBe(7 * MiB);
    expect(got.subarray(0, 5 * MiB).every((x) => x === 0)).toBe(true);
    expect(got.subarray(5 * MiB, 6 * MiB).every((x) => x === 0x62)).toBe(true);
    expect(got.subarray(6 * MiB, 6 * MiB + 10).every((x) => x === 0)).toBe(true);
    expect(got.subarray(6 * MiB + 10).every((x) => x === 0x62)).toBe(true);
  });

  it('mixed opens share one mode: a second writer and a reader join passthrough, all data arrives', async () => {
    const pa = path.join(a.mountpoint, 'pt-mixed.bin');
    const w0 = await writes(a);
    const r = py(`
p = ${J(pa)}
w1 = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)   # empty: passthrough
os.write(w1, b'1' * 1000)
w2 = os.open(p, os.O_RDWR)                        # not empty any more, but must join passthrough
os.pwrite(w2, b'2' * 10, 2000)
rd = os.open(p, os.O_RDONLY)
seen = os.pread(rd, 10, 2000)
os.close(w2)                                      # flush uploads while w1 stays open
os.pwrite(w1, b'3', 5000)
os.close(rd); os.close(w1)
out([seen.decode(), os.stat(p).st_size])`);
    expect(r).toEqual(['2222222222', 5001]);
    expect(await writes(a)).toBe(w0);
    const got = await fsp.readFile(path.join(b.mountpoint, 'pt-mixed.bin'));
    expect([got.length, got.subarray(0, 1000).every((x) => x === 0x31), got.subarray(2000, 2010).toString(), got[5000]]).toEqual([5001, true, '2222222222', 0x33]);
  });

  it('an empty file opened while a daemon-mode handle is open stays in daemon mode (no EIO)', async () => {
    const pa = path.join(a.mountpoint, 'pt-daemon-first.txt');
    await fsp.writeFile(pa, 'old content');
    const w0 = await writes(a);
    const r = py(`
p = ${J(pa)}
d = os.open(p, os.O_RDWR)                         # non-empty: daemon mode
t = os.open(p, os.O_WRONLY | os.O_TRUNC)          # empty now, but must stay in daemon mode
os.write(t, b'new')
got = os.pread(d, 10, 0)
os.close(t); os.close(d)
out(got.decode())`);
    expect(r).toBe('new');
    expect(await writes(a)).toBeGreaterThan(w0);
    expect(await fsp.readFile(path.join(b.mountpoint, 'pt-daemon-first.txt'), 'utf8')).toBe('new');
  });

  it('a create without O_TRUNC (O_EXCL, touch) stays in daemon mode: no backing file for files never written', async () => {
    const pa = path.join(a.mountpoint, 'pt-excl.txt');
    const w0 = await writes(a);
    const o0 = await ptOpens(a);
    py(`
fd = os.open(${J(pa)}, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
os.write(fd, b'daemon-served')
os.close(fd)
out('ok')`);
    expect([await ptOpens(a), await writes(a)]).toEqual([o0, w0 + 1]);
    expect(await fsp.readFile(path.join(b.mountpoint, 'pt-excl.txt'), 'utf8')).toBe('daemon-served');
  });

  it('O_SYNC and O_DSYNC opens of a new file keep the daemon path (every write reaches the daemon)', async () => {
    for (const flag of ['O_SYNC', 'O_DSYNC']) {
      const pa = path.join(a.mountpoint, `pt-${flag}.txt`);
      const w0 = await writes(a);
      py(`
fd = os.open(${J(pa)}, os.O_CREAT | os.O_WRONLY | os.${flag}, 0o644)
os.write(fd, b'synced write')
os.close(fd)
out('ok')`);
      expect(await writes(a)).toBe(w0 + 1);
      expect(await fsp.readFile(path.join(b.mountpoint, `pt-${flag}.txt`), 'utf8')).toBe('synced write');
    }
  });

  it('kill -9 after fsync of a passthrough-written file: the remount shows every fsync\'ed byte', async () => {
    const base = tempDir();
    const dataDir = path.join(base, 'data');
    const mountpoint = path.join(base, 'mnt');
    const k = await kurveUp({ dataDir, mountpoint });
    const file = path.join(mountpoint, 'pt-sync.bin');
    const w0 = await writes(k);
    expect(py(`
fd = os.open(${J(file)}, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.write(fd, bytes([5]) * ${6 * MiB + 7})
os.fsync(fd)
os.write(fd, bytes([6]) * 100)
out('synced')`)).toBe('synced');
    expect(await writes(k)).toBe(w0);
    await k.kill9();
    expect(kurveRun(['umount', mountpoint]).status).toBe(0);
    const k2 = await kurveUp({ dataDir, mountpoint });
    const got = await fsp.readFile(file);
    expect(got.length).toBeGreaterThanOrEqual(6 * MiB + 7);
    expect(got.subarray(0, 6 * MiB + 7).every((x) => x === 5)).toBe(true);
    expect(await k2.stop()).toBe(0);
  });
});
