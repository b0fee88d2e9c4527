// The change feed breaks (the server restarts): the second client invalidates what the kernel
// holds, serves with 1 s timeouts meanwhile, resubscribes, and is precise (within 100 ms) again.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { cleanupKurve, kurveMount, kurveUp, py, tempDir, waitFor } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const J = JSON.stringify;

describeIf([whyNoFuse()], 'change feed loss and recovery', () => {
  afterAll(async () => {
    await cleanupKurve();
  });

  it('a server restart: full invalidation, then precise invalidations again', async () => {
    const base = tempDir();
    const dataDir = path.join(base, 'data');
    const mountpoint = path.join(base, 'mnt');
    let a = await kurveUp({ dataDir, mountpoint });
    const port = a.rpcAddress!.split(':')[1];
    const b = await kurveMount(a);
    await fsp.writeFile(path.join(mountpoint, 'f'), 'one');
    const pb = path.join(b.mountpoint, 'f');
    expect(py(`out(open(${J(pb)}).read())`)).toBe('one');
    expect(await b.metric('kurve_client_feed_connected')).toBe(1);

    await a.stop();
    a = await kurveUp({ dataDir, mountpoint, args: ['--no-bpf', '--listen', `127.0.0.1:${port}`] });
    // B notices, drops everything, and comes back to long timeouts on the new stream.
    await waitFor('the feed to be lost', async () => (await b.metric('kurve_client_invalidations_total', 'kind="reset"')) > 0, 10_000, 50);
    await waitFor('the feed to be back', async () => (await b.metric('kurve_client_feed_connected')) === 1, 15_000, 50);
    expect(py(`out(open(${J(pb)}).read())`)).toBe('one');

    // Precise again: a change through A shows in B within 100 ms.
    const ms = py(`
import time
open(${J(path.join(mountpoint, 'f'))}, 'w').write('two')
t0 = time.monotonic()
while open(${J(pb)}).read() != 'two' and time.monotonic() - t0 < 3:
    time.sleep(0.002)
out((time.monotonic() - t0) * 1000)`) as number;
    expect(ms).toBeLessThanOrEqual(100);
    await b.stop();
    await a.stop();
  }, 90_000);
});
