// copy_file_range(2) inside a Kurve mount (FUSE_COPY_FILE_RANGE, served by the daemon): `cp`
// copies without one WRITE round trip per block; partial ranges at odd offsets, past the source's
// end, from holes, within one file and from a file only another client holds give exactly what
// the same calls give on the local disk; the copy is uploaded at close like a write.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { cleanupKurve, Daemon, kurveMount, kurveUp, py, tempDir, timeVisible, waitFor } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const J = JSON.stringify;
const MiB = 1024 * 1024;

const pattern = (len: number, seed: number): Buffer => {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 131 + seed * 7 + (i >> 12)) & 0xff;
  return b;
};

/**
 * Runs the same copy_file_range calls on `dir` and on a local reference directory, and returns
 * both (results and the destination's bytes, as hex digests) for comparison.
 */
function sameAsLocal(dir: string, local: string, setup: string, calls: string): { kurve: unknown; local: unknown } {
  const run = (d: string): unknown => py(`
import hashlib
d = ${J(d)}
${setup}
res = []
${calls}
out({'res': res, 'dst': hashlib.sha1(open(d + '/dst', 'rb').read()).hexdigest(), 'size': os.stat(d + '/dst').st_size})`);
  return { kurve: run(dir), local: run(local) };
}

describeIf([whyNoFuse()], 'copy_file_range inside a Kurve mount', () => {
  let a: Daemon;
  let b: Daemon;
  let dataDir: string;
  let n = 0;
  /** The datastore objects of inode `ino` (kurve up keeps them under <data>/…/objects/…/<ino>/). */
  const objectsOf = (ino: number): string[] => (fs.readdirSync(dataDir, { recursive: true }) as string[])
    .filter((f) => path.basename(path.dirname(f)) === String(ino) && /^\d+\.\d+$/.test(path.basename(f)));
  const fresh = async (): Promise<[string, string]> => {
    const d = path.join(a.mountpoint, `c${++n}`);
    await fsp.mkdir(d);
    const l = path.join(tempDir(), `c${n}`);
    fs.mkdirSync(l, { recursive: true });
    return [d, l];
  };
  const requests = (d: Daemon, op: string): Promise<number> => d.metric('kurve_fuse_requests_total', `op="${op}"`);

  beforeAll(async () => {
    // A short unlink grace: a deleted source's objects go soon after (the linked copy must stay).
    dataDir = path.join(tempDir(), 'data');
    a = await kurveUp({ dataDir, mountpoint: path.join(tempDir(), 'mnt'), args: ['--no-bpf', '--unlink-grace', '1s'] });
    b = await kurveMount(a);
  }, 60_000);
  afterAll(async () => {
    await cleanupKurve();
  });

  it('cp of a multi-chunk file is served by COPY_FILE_RANGE (no WRITE) and is byte-exact', async () => {
    const [d] = await fresh();
    const data = pattern(9 * MiB + 5, 1);
    await fsp.writeFile(path.join(d, 'src'), data);
    const writes0 = await requests(a, 'WRITE');
    const copies0 = await requests(a, 'COPY_FILE_RANGE');
    execFileSync('cp', [path.join(d, 'src'), path.join(d, 'dst')]);
    expect((await fsp.readFile(path.join(d, 'dst'))).equals(data)).toBe(true);
    expect(await requests(a, 'COPY_FILE_RANGE')).toBeGreaterThan(copies0);
    expect(await requests(a, 'WRITE')).toBe(writes0);
    // Uploaded at close: the other client reads the same bytes.
    expect((await fsp.readFile(path.join(b.mountpoint, `c${n}`, 'dst'))).equals(data)).toBe(true);
  });

  it('ranges at odd offsets into an existing file, over a truncated-up tail, past the source end, and at it', async () => {
    const [d, l] = await fresh();
    const setup = `
open(d + '/src', 'wb').write(bytes((i * 131 + 7) & 255 for i in range(${6 * MiB + 333})))
os.truncate(d + '/src', ${7 * MiB})
open(d + '/dst', 'wb').write(b'\\x5a' * ${5 * MiB + 17})`;
    const calls = `
s = os.open(d + '/src', os.O_RDONLY)
t = os.open(d + '/dst', os.O_WRONLY)
res.append(os.copy_file_range(s, t, ${3 * MiB + 11}, ${MiB + 3}, 5))
res.append(os.copy_file_range(s, t, ${4 * MiB}, ${5 * MiB}, ${7 * MiB + 1}))
res.append(os.copy_file_range(s, t, 100, ${6 * MiB + 333}, 0))
res.append(os.copy_file_range(s, t, 100, ${9 * MiB}, 0))
os.close(s); os.close(t)`;
    const r = sameAsLocal(d, l, setup, calls);
    expect(r.kurve).toEqual(r.local);
    // From the first call's end to the second's start the destination keeps a hole (zeros); the
    // source's tail past its written bytes (truncate up) copies as zeros.
    expect((r.kurve as { res: number[] }).res).toEqual([3 * MiB + 11, 2 * MiB, 100, 0]);
  });

  it('a source with a hole copies zeros; a copy within one file (ranges apart) works', async () => {
    const [d, l] = await fresh();
    const setup = `
f = os.open(d + '/src', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.pwrite(f, b'head', 0)
os.pwrite(f, b'tail', ${10 * MiB})
os.close(f)
open(d + '/dst', 'wb').write(bytes(i & 255 for i in range(${3 * MiB})))`;
    const calls = `
s = os.open(d + '/src', os.O_RDONLY)
t = os.open(d + '/dst', os.O_RDWR)
res.append(os.copy_file_range(s, t, ${10 * MiB + 4}, 0, 0))
res.append(os.copy_file_range(t, t, ${MiB}, 0, ${10 * MiB + 4}))
res.append(E(os.copy_file_range, t, t, ${MiB}, 0, 100))
os.close(s); os.close(t)`;
    const r = sameAsLocal(d, l, setup, calls);
    expect(r.kurve).toEqual(r.local);
    expect((r.kurve as { res: unknown[] }).res).toEqual([10 * MiB + 4, MiB, 'EINVAL']);
  });

  it('into a handle open read-only is EBADF, as on a local disk', async () => {
    const [d, l] = await fresh();
    const setup = `open(d + '/src', 'wb').write(b'abc'); open(d + '/dst', 'wb').write(b'xyz')`;
    const calls = `
s = os.open(d + '/src', os.O_RDONLY)
t = os.open(d + '/dst', os.O_RDONLY)
res.append(E(os.copy_file_range, s, t, 3))
os.close(s); os.close(t)`;
    const r = sameAsLocal(d, l, setup, calls);
    expect(r.kurve).toEqual(r.local);
    expect((r.kurve as { res: unknown[] }).res).toEqual(['EBADF']);
  });

  it('from a file only the other client has cached: fetched, copied, and visible there after close', async () => {
    const [d] = await fresh();
    const data = pattern(5 * MiB + 77, 3);
    await fsp.writeFile(path.join(d, 'src'), data);
    const bd = path.join(b.mountpoint, `c${n}`);
    const ms = timeVisible(
      `s = os.open(${J(path.join(bd, 'src'))}, os.O_RDONLY); t = os.open(${J(path.join(bd, 'dst'))}, os.O_WRONLY | os.O_CREAT, 0o644)
while os.copy_file_range(s, t, ${8 * MiB}) > 0: pass
os.close(s); os.close(t)`,
      `os.stat(${J(path.join(d, 'dst'))}).st_size == ${data.length}`,
    );
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThanOrEqual(100);
    expect((await fsp.readFile(path.join(d, 'dst'))).equals(data)).toBe(true);
    expect((await fsp.readFile(path.join(bd, 'dst'))).equals(data)).toBe(true);
  });

  it('whole stored chunks are linked in the datastore, not uploaded again; the copy outlives its source', async () => {
    const [d] = await fresh();
    const data = pattern(9 * MiB + 5, 4);
    await fsp.writeFile(path.join(d, 'src'), data);
    const linked0 = await a.metric('kurve_client_linked_bytes_total');
    const uploaded0 = await a.metric('kurve_client_uploaded_bytes_total');
    execFileSync('cp', [path.join(d, 'src'), path.join(d, 'dst')]);
    // Chunks 0 and 1 (4 MiB each) linked; only the last, partial one was uploaded.
    expect((await a.metric('kurve_client_linked_bytes_total')) - linked0).toBe(8 * MiB);
    expect((await a.metric('kurve_client_uploaded_bytes_total')) - uploaded0).toBe(MiB + 5);
    // Written over after the copy: that chunk is uploaded afresh, the others stay linked.
    py(`fd = os.open(${J(path.join(d, 'dst'))}, os.O_WRONLY); os.pwrite(fd, b'XYZ', ${4 * MiB + 10}); os.close(fd); out(1)`);
    data.write('XYZ', 4 * MiB + 10);
    const srcIno = (await fsp.stat(path.join(d, 'src'))).ino;
    expect(objectsOf(srcIno)).toHaveLength(3);
    await fsp.unlink(path.join(d, 'src'));
    // The source's objects are purged after the 1 s unlink grace; a client with an empty cache
    // then reads the copy from the datastore.
    await waitFor('the source\'s objects purged', () => objectsOf(srcIno).length === 0, 15_000, 100);
    const c = await kurveMount(a);
    expect((await fsp.readFile(path.join(c.mountpoint, `c${n}`, 'dst'))).equals(data)).toBe(true);
    expect((await fsp.readFile(path.join(d, 'dst'))).equals(data)).toBe(true);
  }, 60_000);
});
