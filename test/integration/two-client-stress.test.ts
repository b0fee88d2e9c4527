// Two clients changing the same file system at once: what one client writes or truncates, the
// other's next open sees exactly (close-to-open), whatever it cached before. Small chunks (64 KiB)
// so multi-chunk files are cheap.
import { cleanupKurve, Daemon, kurveMount, kurveUp, py } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const J = JSON.stringify;

describeIf([whyNoFuse()], 'two clients on one file system', () => {
  let a: Daemon;
  let b: Daemon;

  beforeAll(async () => {
    a = await kurveUp({ args: ['--no-bpf', '--chunk-size', '64KiB'] });
    b = await kurveMount(a);
  }, 60_000);
  afterAll(async () => {
    await cleanupKurve();
  });

  it('a truncate down and up again elsewhere: the cut chunk we cached reads as zeros past the cut', () => {
    // B caches all of a 200 KB file; A cuts it inside chunk 0 and regrows it. The cut chunk keeps
    // its object (the metaserver only trims its length), so B's cached chunk has the same version
    // and used to keep the old bytes: 55 KB of truncated data reappeared on B, never healed.
    const r = py(`
import time, hashlib
res = []
for it in range(5):
    pa = os.path.join(${J(a.mountpoint)}, 'cut%d' % it)
    pb = os.path.join(${J(b.mountpoint)}, 'cut%d' % it)
    with open(pa, 'wb') as f: f.write(os.urandom(200000))
    t0 = time.monotonic()
    while True:
        try:
            if len(open(pb, 'rb').read()) == 200000: break
        except FileNotFoundError: pass
        if time.monotonic() - t0 > 5: raise Exception('B never saw the file')
        time.sleep(0.01)
    fd = os.open(pa, os.O_RDWR)
    os.ftruncate(fd, 10000)
    os.ftruncate(fd, 200000)
    os.close(fd)
    want = open(pa, 'rb').read()
    # The truncates committed before close returned: B's next open must see them.
    got = open(pb, 'rb').read()
    res.append([len(got), sum(1 for x in got[10000:] if x), got == want])
out(res)`, { timeoutMs: 30_000 }) as Array<[number, number, boolean]>;
    expect(r).toEqual(Array.from({ length: 5 }, () => [200000, 0, true]));
  });
});
