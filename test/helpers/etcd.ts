// Real etcd for tests: `useEtcd()` starts a cluster in beforeAll and always stops it (and removes
// its data dirs) in afterAll. Wrap suites in describeIf([whyNoCommand('etcd')], …).
import { EtcdCluster, EtcdClusterOptions, startEtcdCluster } from '../../src/dev/etcd-process';

export { EtcdCluster, startEtcdCluster };

export interface EtcdHandle {
  /** The running cluster; throws if used outside the suite's lifetime. */
  readonly cluster: EtcdCluster;
}

/** Registers beforeAll/afterAll hooks for one etcd cluster shared by the describe block. */
export function useEtcd(opts: EtcdClusterOptions = {}): EtcdHandle {
  let cluster: EtcdCluster | undefined;
  beforeAll(async () => {
    cluster = await startEtcdCluster(opts);
  }, 30_000);
  afterAll(async () => {
    await cluster?.stop();
    cluster = undefined;
  }, 30_000);
  return {
    get cluster(): EtcdCluster {
      if (!cluster) throw new Error('etcd cluster not started (use inside the describe block)');
      return cluster;
    },
  };
}

/**
 * A base port B such that B..B+span-1 are all free on 127.0.0.1 right now, for `kurve dev cluster
 * --base-port` style layouts (tests never use the fixed defaults).
 */
export async function freePortBase(span: number): Promise<number> {
  const net = await import('node:net');
  const tryListen = (port: number) =>
    new Promise<import('node:net').Server | undefined>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(undefined));
      s.listen(port, '127.0.0.1', () => resolve(s));
    });
  // Below the kernel's ephemeral range, so processes binding port 0 cannot take ours meanwhile.
  let low = 32768;
  try {
    low = Number((await import('node:fs')).readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: keep the usual default
  }
  const floor = 10000;
  if (low - span <= floor) throw new Error(`no room for ${span} ports below the ephemeral range (starts at ${low})`);
  for (let attempt = 0; attempt < 30; attempt++) {
    const base = floor + Math.floor(Math.random() * (low - span - floor));
    const held: import('node:net').Server[] = [];
    let ok = true;
    for (let p = base; p < base + span && ok; p++) {
      const s = await tryListen(p);
      if (s) held.push(s);
      else ok = false;
    }
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    if (ok) return base;
  }
  throw new Error(`no free run of ${span} ports found`);
}
