// `kurve warmup`: a file written through one mount is prefetched into the other mount's chunk
// cache, after which reading it sends no READ to that daemon (passthrough). Also the xattr
// interface from inside the mount, and --recursive on a directory.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveMount, kurveRun, kurveUp, py } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const J = JSON.stringify;
const MiB = 1024 * 1024;

describeIf([whyNoFuse()], 'kurve warmup', () => {
  let a: Daemon;
  let b: Daemon;
  beforeAll(async () => {
    a = await kurveUp();
    b = await kurveMount(a);
  }, 60_000);
  afterAll(async () => {
    await cleanupKurve();
  });

  it('prefetches a file: afterwards reading it costs 0 READ requests', async () => {
    await fsp.writeFile(path.join(a.mountpoint, 'big.bin'), Buffer.alloc(10 * MiB + 7, 0x61));
    const target = path.join(b.mountpoint, 'big.bin');
    const fetched0 = await b.metric('kurve_client_cache_fetched_bytes_total');
    const r = kurveRun(['warmup', target]);
    expect(r.err).toBe('');
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/warmup done: 1\/1 files, 10\.0\/10\.0 MiB/);
    expect(await b.metric('kurve_client_cache_fetched_bytes_total') - fetched0).toBe(10 * MiB + 7);
    const reads = await b.metric('kurve_fuse_requests_total', 'op="READ"');
    expect(py(`out(open(${J(target)}, 'rb').read() == b'a' * ${10 * MiB + 7})`)).toBe(true);
    expect(await b.metric('kurve_fuse_requests_total', 'op="READ"')).toBe(reads);
  });

  it('--recursive warms a directory tree; a directory without it is refused', async () => {
    await fsp.mkdir(path.join(a.mountpoint, 'tree', 'sub'), { recursive: true });
    for (const f of ['x', 'sub/y', 'sub/z']) await fsp.writeFile(path.join(a.mountpoint, 'tree', f), Buffer.alloc(MiB, 1));
    const dir = path.join(b.mountpoint, 'tree');
    const refused = kurveRun(['warmup', dir]);
    expect(refused.status).toBe(1);
    expect(refused.err).toMatch(/is a directory \(use --recursive\)/);
    const r = kurveRun(['warmup', '-r', dir]);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/warmup done: 3\/3 files, 3\.0\/3\.0 MiB/);
  });

  it('the xattr interface reports progress from inside the mount', async () => {
    await fsp.writeFile(path.join(a.mountpoint, 'x.bin'), Buffer.alloc(2 * MiB, 2));
    const p = path.join(b.mountpoint, 'x.bin');
    const r = py(`
import time
p = ${J(p)}
before = os.getxattr(p, 'user.kurve.warmup').decode()
os.setxattr(p, 'user.kurve.warmup', b'1')
for _ in range(200):
    s = os.getxattr(p, 'user.kurve.warmup').decode()
    if not s.startswith('running'): break
    time.sleep(0.02)
out([before, s, E(os.setxattr, p, 'user.kurve.warmup', b'bogus')])`);
    expect(r).toEqual(['idle 0/0 0/0', `done 1/1 ${2 * MiB}/${2 * MiB}`, 'EINVAL']);
  });

  it('outside a Kurve mount it fails with a clear message', () => {
    const r = kurveRun(['warmup', '/proc/version']);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/cannot start warmup/);
  });
});
