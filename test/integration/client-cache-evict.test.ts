// A chunk cache smaller than the data a mount works on: fetching the missing chunks of one read or
// write makes room by evicting least recently used clean chunks, and must never evict a chunk that
// same operation already holds (it would read as zeros, and a write would commit those zeros).
// Found by fsx on a 16 MiB cache; reduced to: three dirty chunks (not evictable) fill most of the
// cache, one clean chunk is held, and an O_DIRECT read or write spans it and a chunk not held.
// Data written through the mount counts against the limit too (evicted once committed), and two
// readers of such files at once must not see each other's readahead evict what they hold.
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveMount, kurveUp, py } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const J = JSON.stringify;

describeIf([whyNoFuse()], 'chunk cache eviction under a read or write that fetches', () => {
  let small: Daemon;
  let writer: Daemon;

  beforeAll(async () => {
    small = await kurveUp({ args: ['--no-bpf', '--cache-size', '16MiB'] });
    writer = await kurveMount(small);
  }, 60_000);
  afterAll(async () => {
    await cleanupKurve();
  });

  /**
   * Writes a 32 MiB random file through the writer mount; through the small-cache mount (O_DIRECT,
   * so every byte goes through the daemon) dirties chunks 0-2, fetches chunk 3, then runs `op` on
   * 8 KiB spanning the end of chunk 3 and the start of chunk 4 (not held). Prints what `op` printed.
   */
  const scenario = (name: string, op: string): unknown => py(`
import random
MB = 1 << 20; CS = 4 * MB
data = bytearray(random.Random(7).randbytes(32 * MB))
with open(${J(path.join(writer.mountpoint, name))}, 'wb') as f:
    f.write(data)
p = ${J(path.join(small.mountpoint, name))}
fd = os.open(p, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 8192)
for i in range(3):
    buf[:4096] = bytes(data[i * CS:i * CS + 4096])
    os.pwrite(fd, memoryview(buf)[:4096], i * CS)
os.preadv(fd, [memoryview(buf)[:4096]], 3 * CS)
span = 4 * CS - 4096
${op}
os.close(fd)`, { timeoutMs: 60_000 });

  it('a read spanning a held chunk and a fetched one returns the held chunk\'s bytes', () => {
    expect(scenario('read-span', `
n = os.preadv(fd, [buf], span)
out({'n': n, 'held': bytes(buf[:4096]) == bytes(data[span:span + 4096]), 'fetched': bytes(buf[4096:]) == bytes(data[span + 4096:span + 8192])})`))
      .toEqual({ n: 8192, held: true, fetched: true });
  }, 90_000);

  it('a write spanning a held chunk and a fetched one keeps the rest of the held chunk', () => {
    const name = 'write-span';
    scenario(name, `
buf[:] = bytes([0xab]) * 8192
os.pwrite(fd, buf, span)
os.fsync(fd)
out(0)`);
    // Read back through the other mount: what was committed.
    expect(py(`
import random
MB = 1 << 20; CS = 4 * MB
data = bytearray(random.Random(7).randbytes(32 * MB))
data[4 * CS - 4096:4 * CS + 4096] = bytes([0xab]) * 8192
import time
t0 = time.monotonic()
while True:  # the writer mount's page cache is dropped when the change feed tells it
    with open(${J(path.join(writer.mountpoint, name))}, 'rb') as f:
        got = f.read()
    if got[4 * CS - 4096:4 * CS + 4096] == bytes([0xab]) * 8192 or time.monotonic() - t0 > 5:
        break
    time.sleep(0.05)
bad = next((i for i in range(0, len(data), 4096) if got[i:i + 4096] != data[i:i + 4096]), -1)
out({'size': len(got), 'firstBadPage': bad})`, { timeoutMs: 60_000 })).toEqual({ size: 32 * 1024 * 1024, firstBadPage: -1 });
  }, 90_000);

  it('files written here are evicted down to the limit once closed, and read back intact by two readers at once', async () => {
    const dir = small.mountpoint;
    const gen = `
import random
MB = 1 << 20
data = random.Random(11).randbytes(64 * MB)`;
    py(`${gen}
with open(${J(path.join(dir, 'pt64'))}, 'wb') as f:  # O_TRUNC of a new file: passthrough writes
    f.write(data)
fd = os.open(${J(path.join(dir, 'dm64'))}, os.O_RDWR | os.O_CREAT, 0o644)  # daemon-mode writes
os.write(fd, data)
os.close(fd)
out(0)`, { timeoutMs: 60_000 });
    expect(await small.metric('kurve_client_cache_used_bytes')).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(await small.metric('kurve_client_cache_evictions_total')).toBeGreaterThan(0);
    // Like cmp(1): both files read alternately in 32 KiB blocks (the kernel reads ahead in each).
    const res = py(`${gen}
files = {n: open(os.path.join(${J(dir)}, n), 'rb') for n in ('pt64', 'dm64')}
bad = {n: -1 for n in files}
B = 32 * 1024
for off in range(0, len(data), B):
    for n, f in files.items():
        if f.read(B) != data[off:off + B] and bad[n] < 0:
            bad[n] = off
out(bad)`, { timeoutMs: 60_000 });
    expect(res).toEqual({ pt64: -1, dm64: -1 });
  }, 90_000);
});
