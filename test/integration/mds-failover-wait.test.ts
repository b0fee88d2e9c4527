// A client's MDS calls wait through an MDS outage (a failover) up to their budget instead of
// failing at once: `kurve mount --mds-timeout` (default 30 s) feeds this budget.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { MdsClient } from '../../src/mds/client';
import { MdsServer, startMds } from '../../src/mds/server';
import { DEFAULT_MDS_TIMEOUT_MS } from '../../src/fuse/remote';

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

describe('MDS client during an MDS outage', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-mdswait-'));
  let server: MdsServer | undefined;
  let client: MdsClient | undefined;
  afterAll(async () => {
    client?.close();
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('defaults to a 30 s budget for mounts', () => {
    expect(DEFAULT_MDS_TIMEOUT_MS).toBe(30_000);
  });

  it('waits for an MDS that comes back within the budget, then succeeds', async () => {
    const port = await freePort();
    client = new MdsClient([`127.0.0.1:${port}`], { budgetMs: DEFAULT_MDS_TIMEOUT_MS });
    const start = Date.now();
    const call = client.listFs();
    await new Promise((r) => setTimeout(r, 1500));
    server = await startMds({ listen: `127.0.0.1:${port}`, dataDir: dir });
    await expect(call).resolves.toEqual([]);
    expect(Date.now() - start).toBeGreaterThanOrEqual(1400);
  });

  it('fails with a clear error once the budget is spent', async () => {
    const port = await freePort();
    const c = new MdsClient([`127.0.0.1:${port}`], { budgetMs: 600 });
    try {
      const start = Date.now();
      await expect(c.listFs()).rejects.toThrow(/MDS/);
      expect(Date.now() - start).toBeLessThan(5000);
    } finally {
      c.close();
    }
  });
});
