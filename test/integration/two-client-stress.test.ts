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

  it('an open while another handle of the file is open in passthrough sees what the other client closed', async () => {
    // B's first handle reads a fully cached file through passthrough (the kernel reads the
    // backing file); a second open must join that mode. It used to see the old bytes until the
    // first handle closed: close-to-open broken for as long as any reader kept the file open.
    const before = await b.metric('kurve_client_passthrough_opens_total');
    const r = py(`
import time
pa = os.path.join(${J(a.mountpoint)}, 'held')
pb = os.path.join(${J(b.mountpoint)}, 'held')
old = os.urandom(300000)
with open(pa, 'wb') as f: f.write(old)
t0 = time.monotonic()
while True:
    try:
        if open(pb, 'rb').read() == old: break
    except FileNotFoundError: pass
    if time.monotonic() - t0 > 5: raise Exception('B never saw the file')
    time.sleep(0.01)
held = os.open(pb, os.O_RDONLY)
first = os.pread(held, 300000, 0) == old
new = os.urandom(200000)
with open(pa, 'r+b') as f:
    f.write(new)
    f.truncate(200000)
got = open(pb, 'rb').read()
# The handle kept open may see the new bytes too (as with a local writer), never a mix of zeros.
still = os.pread(held, 300000, 0)
os.close(held)
after = open(pb, 'rb').read()
out([first, got == new, still in (old, new), after == new])`, { timeoutMs: 30_000 });
    expect(r).toEqual([true, true, true, true]);
    // The handles were passthrough ones (else this case tests nothing).
    expect((await b.metric('kurve_client_passthrough_opens_total')) - before).toBeGreaterThanOrEqual(2);
  });

  it('a cold read while the other client keeps rewriting one chunk of the file never returns zeros', () => {
    // Each of A's commits makes B refresh the chunk map; a fetch under way when that happened used
    // to store nothing (its ref was replaced, even with the same version), and the read it served
    // returned the backing file's zeros: 47 of 63 untouched chunks read as zeros, 10 runs of 10.
    const r = py(`
import time, multiprocessing as mp
CH = 65536
N = 32
def churn(pa, stop):
    i = 0
    while not stop.is_set():
        fd = os.open(pa, os.O_WRONLY)
        os.pwrite(fd, bytes([1 + i % 200]) * 100, (N - 1) * CH)
        os.close(fd)
        i += 1
res = []
for it in range(3):
    pa = os.path.join(${J(a.mountpoint)}, 'hot%d' % it)
    pb = os.path.join(${J(b.mountpoint)}, 'hot%d' % it)
    with open(pa, 'wb') as f: f.write(bytes([0xaa]) * N * CH)
    stop = mp.Event()
    p = mp.Process(target=churn, args=(pa, stop))
    p.start()
    time.sleep(0.2)
    try:
        d = open(pb, 'rb').read()
        res.append([len(d), sum(1 for c in range(N - 1) if d[c * CH:(c + 1) * CH] != bytes([0xaa]) * CH)])
    except OSError as e:
        res.append(['error', e.errno])
    stop.set()
    p.join()
out(res)`, { timeoutMs: 40_000 });
    expect(r).toEqual([[32 * 65536, 0], [32 * 65536, 0], [32 * 65536, 0]]);
  });
});
