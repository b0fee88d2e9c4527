// A `kurve dev cluster` for a test file, on free ports (tried again if another test takes one of
// the layout between the check and the bind), and what tests ask its datastores.
import { DevCluster, DevClusterOptions, startDevCluster } from '../../src/dev/cluster';
import { ListedObject } from '../../src/datastore/api';
import { DataClient } from '../../src/datastore/client';
import { freePortBase } from './etcd';
import { CLI, ensureBuilt } from './metaserver-process';

export async function startTestCluster(opts: Omit<DevClusterOptions, 'basePort' | 'cli'>): Promise<DevCluster> {
  ensureBuilt();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDevCluster({ ...opts, basePort: await freePortBase(60), cli: CLI });
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE|address already in use/.test(String(err))) throw err;
    }
  }
}

/** Every object on one datastore (over gRPC, as the metaserver's sweep lists them). */
export async function objectsOn(address: string): Promise<ListedObject[]> {
  const c = new DataClient(address, { deadlineMs: 5000 });
  try {
    const all: ListedObject[] = [];
    let after: string | undefined;
    do {
      const page = await c.list(after, 1000);
      all.push(...page.objects);
      after = page.next;
    } while (after);
    return all;
  } finally {
    c.close();
  }
}
