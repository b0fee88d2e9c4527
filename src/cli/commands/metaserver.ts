// `kurve metaserver`: a standalone metaserver (namespace over lmdb) serving gRPC until SIGTERM.
import { Command } from 'commander';
import type { DataService } from '../../datastore/api';
import type { RepairSource } from '../../metaserver/repair';
import { DEFAULT_GC_GRACE_MS, DEFAULT_METASERVER_LISTEN, DEFAULT_UNLINK_GRACE_MS } from '../../metaserver/defaults';

interface MetaserverFlags {
  listen: string;
  data?: string;
  etcd?: string;
  cluster?: string;
  token?: string;
  metrics?: string;
  datastore?: string;
  mds?: string;
  advertise?: string;
  createFs?: string[];
  gcGrace?: string;
  unlinkGrace?: string;
  strayGrace?: string;
  sweepInterval?: string;
  repairInterval?: string;
  repairConcurrency?: string;
}

export function register(program: Command): void {
  program
    .command('metaserver')
    .description('run a metaserver: the namespace (inodes, dentries, xattrs, chunk maps) over lmdb, served over gRPC')
    .option('--listen <addr>', 'gRPC address (HOST:PORT; port 0 = any free port)', DEFAULT_METASERVER_LISTEN)
    .option('--data <dir>', 'lmdb directory holding the namespace (created if missing; required unless --etcd)')
    .option('--etcd <endpoints>', 'keep the namespace in etcd (HOST:PORT,...) instead of lmdb: stateless, several metaservers serve one fs')
    .option('--cluster <name>', 'with --etcd: the cluster whose namespace to serve (etcd keys kurve/<name>/)', 'default')
    .option('--token <token>', 'shared token every RPC must carry (also $KURVE_TOKEN)')
    .option('--metrics <addr>', 'serve Prometheus /metrics on HOST:PORT (default: none)')
    .option('--datastore <addrs>', 'datastore(s), comma-separated, to delete replaced chunks and purged files from (default with --mds: every datastore the MDS lists; without: keep them queued)')
    .option('--mds <addrs>', 'MDS address(es), comma-separated: register and heartbeat as a metaserver')
    .option('--advertise <addr>', 'address to give the MDS (default: the bound --listen address)')
    .option('--create-fs <id...>', 'create these file system ids (root directory) if missing')
    .option('--gc-grace <duration>', 'wait before deleting a replaced chunk object (readers may be mid-read)', `${DEFAULT_GC_GRACE_MS / 1000}s`)
    .option('--unlink-grace <duration>', 'keep an unlinked file no session had registered open this long (clients register lazily)', `${DEFAULT_UNLINK_GRACE_MS / 1000}s`)
    .option('--stray-grace <duration>', 'delete datastore objects no chunk map references once older than this (needs datastores)', '24h')
    .option('--sweep-interval <duration>', 'how often to look for such objects (default: a quarter of --stray-grace, at most 1h)')
    .option('--repair-interval <duration>', 'with --mds (no --datastore): how often to put missing copies of replicated chunks back (0 = only by `kurve repair`)', '60s')
    .option('--repair-concurrency <n>', 'chunk copies a repair pass makes at once', '4')
    .addHelpText('after', `
Stops gracefully on SIGTERM/SIGINT: ends change-feed streams, lets in-flight calls finish, closes lmdb.
Every acknowledged write is synced to disk before the reply. Check a stopped store with \`kurve fsck\`.
With --mds (and no --datastore) it also re-replicates: every --repair-interval it puts each live chunk
of a file system with --replicas N > 1 back on its first N live datastores (see \`kurve repair --help\`).

Examples:
  kurve metaserver --data /var/lib/kurve/meta
  kurve metaserver --listen 0.0.0.0:6702 --data /srv/meta --mds 10.0.0.1:6701 --datastore 10.0.0.2:6703
  kurve metaserver --listen 127.0.0.1:0 --data /tmp/meta --create-fs 1 --metrics 127.0.0.1:9570
  kurve metaserver --etcd 127.0.0.1:2379,127.0.0.1:2381 --mds 127.0.0.1:6701,127.0.0.1:6702`)
    .action(async (flags: MetaserverFlags) => {
      const { startMetaserver } = await import('../../metaserver/server');
      const { exitOnSignal } = await import('../../common/service');
      const { parseDuration } = await import('../../common/config');
      const token = flags.token ?? process.env.KURVE_TOKEN;
      const { datastore, closeDatastores, repairSource } = await datastoresOf(flags, token);
      const concurrency = Number(flags.repairConcurrency ?? '4');
      if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new Error(`invalid --repair-concurrency '${flags.repairConcurrency}': a positive integer`);
      const createFs = (flags.createFs ?? []).map((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`--create-fs: '${v}' is not a file system id`);
        return n;
      });
      const namespace = {
        gcGraceMs: parseDuration(flags.gcGrace ?? `${DEFAULT_GC_GRACE_MS / 1000}s`),
        unlinkGraceMs: parseDuration(flags.unlinkGrace ?? `${DEFAULT_UNLINK_GRACE_MS / 1000}s`),
        strayGraceMs: parseDuration(flags.strayGrace ?? '24h'),
        sweepIntervalMs: flags.sweepInterval ? parseDuration(flags.sweepInterval) : undefined,
        repair: repairSource && { source: repairSource, intervalMs: parseDuration(flags.repairInterval ?? '60s'), concurrency },
      };
      if (!flags.etcd && !flags.data) throw new Error('kurve metaserver needs --data DIR (lmdb) or --etcd HOST:PORT,...');
      const ms = flags.etcd
        ? await (await import('../../metaserver/engines/etcd-metaserver')).startEtcdMetaserver({
          listen: flags.listen, etcd: flags.etcd, cluster: flags.cluster, token, metricsListen: flags.metrics, datastore, mds: flags.mds,
          advertise: flags.advertise, createFs, namespace,
        })
        : await startMetaserver({
          listen: flags.listen, dataDir: flags.data!, token, metricsListen: flags.metrics, datastore, mds: flags.mds,
          advertise: flags.advertise, createFs, namespace,
        });
      // One plain line on stdout so scripts (and tests) can find the bound address.
      process.stdout.write(`metaserver listening on ${ms.address}\n`);
      exitOnSignal({ name: 'metaserver', close: async () => { await ms.close(); closeDatastores(); } });
    });
}

/**
 * The datastores this metaserver deletes objects from, sweeps and sums for statfs: the --datastore
 * list, else (with --mds) every datastore the MDS lists, kept up to date; else none.
 */
async function datastoresOf(flags: MetaserverFlags, token: string | undefined): Promise<{
  datastore?: DataService; closeDatastores: () => void; repairSource?: RepairSource;
}> {
  const { parseAddressList } = await import('../../datastore/server');
  const { DataClient } = await import('../../datastore/client');
  const { DataRouter } = await import('../../datastore/router');
  if (flags.datastore) {
    const clients = parseAddressList(flags.datastore).map((a) => new DataClient(a, { token }));
    const datastore = clients.length === 1 ? clients[0] : new DataRouter(clients.map((c) => ({ id: c.address, service: c })));
    return { datastore, closeDatastores: () => clients.forEach((c) => c.close()) };
  }
  if (!flags.mds) return { closeDatastores: () => undefined };
  const { MdsClient } = await import('../../mds/client');
  const { DatastoreDirectory } = await import('../../datastore/directory');
  const mds = new MdsClient(flags.mds, { token });
  // In the background: the metaserver must start (and register) while the MDS is not up yet.
  const dir = await DatastoreDirectory.open(mds, { background: true, client: { token } });
  // Re-replication places copies as clients do: over the MDS's datastore ids and replica counts.
  const repairSource: RepairSource = { fileSystems: () => mds.listFs(), nodes: () => dir.nodes() };
  return { datastore: dir.router, closeDatastores: () => { dir.close(); mds.close(); }, repairSource };
}
