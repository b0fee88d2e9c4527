// A datastore process: ChunkStore + Datastore gRPC service + Health + /metrics + the raw-TCP bulk
// transport for object bytes (bulk-server.ts, on the gRPC host), and (with `mds`)
// registration and heartbeats to the MDS under a stable id kept in the data directory.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startServiceProcess, ServiceProcess } from '../common/service';
import { startHeartbeat, Heartbeat } from '../mds/heartbeat';
import { ChunkStore } from './chunk-store';
import { datastoreRpcService } from './service';
import { BulkServer, hostOf, startBulkServer } from './bulk-server';

/** Default gRPC port of a standalone datastore. */
export const DATASTORE_DEFAULT_PORT = 6703;
export const DATASTORE_DEFAULT_LISTEN = `127.0.0.1:${DATASTORE_DEFAULT_PORT}`;

export interface DatastoreOptions {
  /** HOST:PORT (port 0 = free port). */
  readonly listen: string;
  /** Directory holding the objects (created if missing). */
  readonly dir: string;
  readonly token?: string;
  /** HOST:PORT for /metrics; empty = none. */
  readonly metricsListen?: string;
  /** MDS addresses (comma-separated or a list): register and heartbeat when given. */
  readonly mds?: string | readonly string[];
  /** Address to advertise to the MDS (default: the bound address). */
  readonly advertise?: string;
  /** Heartbeat period (default: what the MDS asks for, 2 s until it answers). */
  readonly heartbeatMs?: number;
  readonly graceMs?: number;
  /** Port of the bulk transport on the listen host: 0 (default) = a free one, -1 = none (gRPC only). */
  readonly bulkPort?: number;
}

export interface Datastore {
  readonly store: ChunkStore;
  readonly rpc: ServiceProcess;
  readonly address: string;
  /** The bulk transport's listener, when it runs. */
  readonly bulk?: BulkServer;
  /** The id this datastore registers under (stable across restarts of the same dir). */
  readonly id: string;
  close(): Promise<void>;
}

/** The server id stored in DIR/server-id, created on first start. */
export function stableServerId(dir: string, prefix: string): string {
  const file = path.join(dir, 'server-id');
  try {
    const id = fs.readFileSync(file, 'utf8').trim();
    if (id) return id;
  } catch {
    // first start
  }
  const id = `${prefix}-${randomUUID().slice(0, 8)}`;
  fs.writeFileSync(file, `${id}\n`);
  return id;
}

export function parseAddressList(v: string | readonly string[] | undefined): string[] {
  if (!v) return [];
  const list = typeof v === 'string' ? v.split(',') : v;
  return list.map((s) => s.trim()).filter((s) => s.length > 0);
}

export async function startDatastore(opts: DatastoreOptions): Promise<Datastore> {
  const store = await ChunkStore.open(opts.dir);
  const id = stableServerId(opts.dir, 'ds');
  let heartbeat: Heartbeat | undefined;
  let rpc: ServiceProcess;
  let bulk: BulkServer | undefined;
  let bulkOpen = false;
  try {
    if ((opts.bulkPort ?? 0) >= 0) {
      bulk = await startBulkServer(store, { host: hostOf(opts.listen), port: opts.bulkPort, token: opts.token, graceMs: opts.graceMs });
      bulkOpen = true;
    }
    const b = bulk;
    rpc = await startServiceProcess({
      name: 'datastore',
      listen: opts.listen,
      token: opts.token,
      metricsListen: opts.metricsListen,
      services: [datastoreRpcService(store, { token: opts.token }, () => (bulkOpen && b ? b.port : 0))],
      graceMs: opts.graceMs,
      // Stop heartbeating first-thing in close() would be nicer, but the server drains before
      // onClose runs; the MDS marks us unhealthy after 3 missed beats either way.
      onClose: [() => heartbeat?.stop(), () => bulk?.close(), () => store.close()],
    });
  } catch (err) {
    await bulk?.close();
    await store.close();
    throw err;
  }
  const mds = parseAddressList(opts.mds);
  if (mds.length > 0) {
    heartbeat = startHeartbeat({
      mds, token: opts.token, kind: 'datastore', id, address: opts.advertise ?? rpc.address, intervalMs: opts.heartbeatMs,
    });
  }
  const bulkServer = bulk && {
    port: bulk.port,
    close: () => {
      bulkOpen = false;
      return bulk!.close();
    },
  };
  return { store, rpc, address: rpc.address, bulk: bulkServer, id, close: () => rpc.close() };
}
