// More cached files than the daemon tracks in memory (ClientOptions.trackedInodes): idle inodes
// are parked — their backing files stay in the chunk cache — and adopted again at the next open,
// so a tree larger than the limit still reads with passthrough (0 READ requests), and a parked
// file another client changed meanwhile is read fresh (its chunk versions no longer match).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveMount, kurveUp } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const TRACKED = 64;
const FILES = 300;

describeIf([whyNoFuse()], 'parked inodes (more cached files than tracked in memory)', () => {
  let a: Daemon;
  let b: Daemon;
  const reads = (d: Daemon): Promise<number> => d.metric('kurve_fuse_requests_total', 'op="READ"');
  const content = (i: number, tag = 'v1'): string => `${tag} file ${i} `.repeat(50 + (i % 7));

  beforeAll(async () => {
    a = await kurveUp({ env: { KURVE_TRACKED_INODES: String(TRACKED) } });
    b = await kurveMount(a);
  }, 60_000);
  afterAll(async () => {
    await cleanupKurve();
  });

  it(`${FILES} files written through one mount read back without a READ after ${TRACKED} are tracked`, async () => {
    const dir = path.join(a.mountpoint, 'many');
    fs.mkdirSync(dir);
    for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(dir, `f${i}`), content(i));
    const r0 = await reads(a);
    for (let i = 0; i < FILES; i++) expect(fs.readFileSync(path.join(dir, `f${i}`), 'utf8')).toBe(content(i));
    expect(await reads(a)).toBe(r0);
    expect(await a.metric('kurve_client_cache_evictions_total')).toBe(0);
  });

  it('a parked file changed by another client is read fresh, the others still from the cache', async () => {
    const dir = path.join(a.mountpoint, 'many');
    // Touch the later files so f0..f9 are parked (oldest), then change f3 through the other mount.
    for (let i = FILES - TRACKED; i < FILES; i++) fs.readFileSync(path.join(dir, `f${i}`));
    fs.writeFileSync(path.join(b.mountpoint, 'many', 'f3'), content(3, 'v2-from-b'));
    const t0 = Date.now();
    while (fs.readFileSync(path.join(dir, 'f3'), 'utf8') !== content(3, 'v2-from-b') && Date.now() - t0 < 2000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(fs.readFileSync(path.join(dir, 'f3'), 'utf8')).toBe(content(3, 'v2-from-b'));
    const r0 = await reads(a);
    for (const i of [0, 1, 2, 4, 5]) expect(fs.readFileSync(path.join(dir, `f${i}`), 'utf8')).toBe(content(i));
    expect(await reads(a)).toBe(r0);
  });

  it('a parked file deleted and a new one written in its place read correctly', async () => {
    const dir = path.join(a.mountpoint, 'many');
    fs.unlinkSync(path.join(dir, 'f6'));
    expect(fs.existsSync(path.join(dir, 'f6'))).toBe(false);
    fs.writeFileSync(path.join(dir, 'f6'), 'new');
    expect(fs.readFileSync(path.join(dir, 'f6'), 'utf8')).toBe('new');
    expect(fs.readFileSync(path.join(b.mountpoint, 'many', 'f6'), 'utf8')).toBe('new');
  });
});
