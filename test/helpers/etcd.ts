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
