// The local chunk cache survives a clean restart: files read before an unmount are read after the
// next mount of the same file system with the same cache directory without a READ request or a
// datastore fetch (passthrough from the adopted backing files). A file another client changed
// meanwhile is read fresh; a corrupt index or a kill -9 starts empty and reads correct data; two
// daemons never share one cache directory (a second mount of the file system takes the next slot).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveMount, kurveUp, lazyUnmount, tempDir } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const MiB = 1024 * 1024;

describeIf([whyNoFuse()], 'chunk cache across daemon restarts', () => {
  let base: string;
  let up: Daemon;
  const dataDir = (): string => path.join(base, 'data');
  const mnt = (): string => path.join(base, 'mnt');
  const content = (i: number, tag = 'v1'): Buffer => {
    const b = Buffer.alloc(i === 0 ? 9 * MiB + 123 : 1000 + i * 777);
    for (let k = 0; k < b.length; k += 64) b.write(`${tag}:${i}:${k};`, k);
    return b;
  };
  const restartUp = async (): Promise<Daemon> => kurveUp({ dataDir: dataDir(), mountpoint: mnt() });
  const reads = (d: Daemon): Promise<number> => d.metric('kurve_fuse_requests_total', 'op="READ"');
  const fetched = (d: Daemon): Promise<number> => d.metric('kurve_client_cache_fetched_bytes_total');
  const readAll = (root: string, n = 4, tag = 'v1'): void => {
    for (let i = 0; i < n; i++) expect(fs.readFileSync(path.join(root, 'r', `f${i}`)).equals(content(i, tag))).toBe(true);
  };

  beforeAll(async () => {
    base = tempDir();
    up = await restartUp();
    fs.mkdirSync(path.join(mnt(), 'r'));
    for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(mnt(), 'r', `f${i}`), content(i));
    readAll(mnt());
  }, 60_000);
  afterAll(async () => {
    await cleanupKurve();
  });

  it('after a clean restart, cached files are read with 0 READ requests and nothing fetched', async () => {
    expect(await up.stop()).toBe(0);
    expect(fs.existsSync(path.join(dataDir(), 'cache', 'fs-1', 'index.json'))).toBe(true);
    up = await restartUp();
    expect(up.output()).toMatch(/chunk cache restored/);
    expect(await up.metric('kurve_client_cache_used_bytes')).toBeGreaterThanOrEqual(content(0).length);
    const pt0 = await up.metric('kurve_client_passthrough_opens_total');
    readAll(mnt());
    expect(await reads(up)).toBe(0);
    expect(await fetched(up)).toBe(0);
    expect(await up.metric('kurve_client_passthrough_opens_total')).toBeGreaterThanOrEqual(pt0 + 4);
  }, 60_000);

  it('a file another client changed while this one was down is read fresh, the others from the cache', async () => {
    const cacheDir = path.join(tempDir(), 'cache');
    const args = ['--no-bpf', '--cache-dir', cacheDir];
    let c = await kurveMount(up, { args });
    readAll(c.mountpoint);
    expect(await c.stop()).toBe(0);
    // Same length, other bytes: only the chunk versions tell.
    fs.writeFileSync(path.join(mnt(), 'r', 'f2'), content(2, 'v2'));
    c = await kurveMount(up, { args });
    expect(fs.readFileSync(path.join(c.mountpoint, 'r', 'f2')).equals(content(2, 'v2'))).toBe(true);
    const r0 = await reads(c);
    const f0 = await fetched(c);
    for (const i of [0, 1, 3]) expect(fs.readFileSync(path.join(c.mountpoint, 'r', `f${i}`)).equals(content(i))).toBe(true);
    expect(await reads(c)).toBe(r0);
    expect(await fetched(c)).toBe(f0);
    expect(f0).toBeLessThan(content(0).length); // f2 only, not the 9 MiB f0 again
    fs.writeFileSync(path.join(mnt(), 'r', 'f2'), content(2));
    // A second mount of the same file system with the same cache directory, while the first
    // runs: it takes the next slot (never the first's files) and reads correct data.
    const c2 = await kurveMount(up, { args });
    readAll(c2.mountpoint);
    expect(c2.output()).toMatch(/in use by another client of this file system/);
    await c2.stop();
    expect(fs.existsSync(path.join(cacheDir, 'fs-1.2', 'index.json'))).toBe(true);
    await c.stop();
  }, 60_000);

  it('a corrupt index is ignored: the restart starts empty and reads correct data', async () => {
    expect(await up.stop()).toBe(0);
    const idx = path.join(dataDir(), 'cache', 'fs-1', 'index.json');
    fs.writeFileSync(idx, '{"format":1,"fsId":');
    up = await restartUp();
    expect(up.output()).toMatch(/chunk cache starts empty/);
    readAll(mnt());
    expect(await fetched(up)).toBeGreaterThanOrEqual(content(0).length);
  }, 60_000);

  it('after kill -9 the restart starts empty (no index) and reads correct data', async () => {
    readAll(mnt());
    await up.kill9();
    lazyUnmount(mnt());
    expect(fs.existsSync(path.join(dataDir(), 'cache', 'fs-1', 'index.json'))).toBe(false);
    up = await restartUp();
    expect(up.output()).toMatch(/chunk cache starts empty/);
    readAll(mnt());
    expect(await fetched(up)).toBeGreaterThanOrEqual(content(0).length);
    // Leftover backing files of the killed daemon were removed, not adopted.
    expect(await up.metric('kurve_client_cache_used_bytes')).toBeLessThanOrEqual(await fetched(up));
  }, 60_000);
});
