// DatastoreDirectory: the datastores the MDS knows, as a DataRouter kept in step with it. Clients
// and metaservers all place by the MDS's list (every registered datastore, by its stable id), so
// they agree on every chunk's owner; the list is polled, and a datastore added, gone down, back
// or moved to another address reaches the router within one refresh period. A datastore that comes
// back (or moves) gets a fresh connection, so no gRPC reconnect backoff delays its return.
import { moduleLogger } from '../common/logger';
import type { ServerInfo } from '../mds/api';
import type { DataService } from './api';
import { DataClient, DataClientOptions } from './client';
import { DataNode, DataRouter } from './router';

const log = moduleLogger('datastore-directory');

/** How often the MDS is asked (its servers heartbeat every 2 s by default). */
export const DEFAULT_DATASTORE_REFRESH_MS = 2_000;

/** The part of the MDS the directory uses. */
export interface DatastoreLister {
  listServers(kind: 'datastore'): Promise<ServerInfo[]>;
}

export type Connection = DataService & { close(): void };

export interface DirectoryOptions {
  /** Poll period (default 2 s); 0 = no polling (call refresh() yourself). */
  readonly refreshMs?: number;
  /** Opens a connection to a datastore address (default: a DataClient). */
  readonly connect?: (address: string) => Connection;
  /** For the default DataClient (token, deadlines). */
  readonly client?: DataClientOptions;
  /**
   * Return at once and read the list in the background (a server that must start while the MDS
   * is not up yet); until then the router has no nodes: writes and reads fail with EIO, deletes
   * too (so they are retried).
   */
  readonly background?: boolean;
  /** Copies of each chunk the router writes (the file system's `replicas`; default 1). */
  readonly replicas?: number;
}

interface Entry {
  readonly address: string;
  readonly conn: Connection;
  healthy: boolean;
}

export class DatastoreDirectory {
  readonly router: DataRouter;
  private readonly entries = new Map<string, Entry>();
  private readonly connect: (address: string) => Connection;
  private timer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;
  private closed = false;

  private constructor(private readonly mds: DatastoreLister, opts: DirectoryOptions) {
    this.connect = opts.connect ?? ((address) => new DataClient(address, opts.client));
    this.router = new DataRouter([], { replicas: opts.replicas });
  }

  /** Reads the list once (failing if the MDS cannot be asked, unless `background`), then keeps polling. */
  static async open(mds: DatastoreLister, opts: DirectoryOptions = {}): Promise<DatastoreDirectory> {
    const dir = new DatastoreDirectory(mds, opts);
    const every = opts.refreshMs ?? DEFAULT_DATASTORE_REFRESH_MS;
    if (opts.background) {
      dir.schedule(0, every);
      return dir;
    }
    await dir.refresh();
    if (every > 0) dir.schedule(every, every);
    return dir;
  }

  private schedule(first: number, every: number): void {
    this.timer = setTimeout(() => {
      this.refresh()
        .catch((err: unknown) => log.warn({ err: String((err as Error)?.message ?? err) }, 'asking the MDS for datastores failed; keeping the last list'))
        .finally(() => {
          if (!this.closed && every > 0) this.schedule(every, every);
        });
    }, first);
    this.timer.unref();
  }

  /** Asks the MDS now and applies the answer (one refresh at a time). */
  refresh(): Promise<void> {
    this.refreshing ??= this.refreshOnce().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async refreshOnce(): Promise<void> {
    const servers = (await this.mds.listServers('datastore')).filter((s) => s.kind === 'datastore');
    if (this.closed) return;
    const seen = new Set<string>();
    for (const s of servers) {
      seen.add(s.id);
      const e = this.entries.get(s.id);
      if (e && e.address === s.address && (e.healthy || !s.healthy)) {
        if (e.healthy !== s.healthy) {
          log.warn({ datastore: s.id, address: s.address }, this.router.replicas > 1
            ? 'datastore down: its copies are written to the next datastore, reads use the other replicas'
            : 'datastore down: its chunks are written to the next datastore, reads of what it holds fail (EIO) until it is back');
        }
        e.healthy = s.healthy;
        continue;
      }
      e?.conn.close();
      this.entries.set(s.id, { address: s.address, conn: this.connect(s.address), healthy: s.healthy });
      log.info({ datastore: s.id, address: s.address, healthy: s.healthy }, e ? (e.address !== s.address ? 'datastore moved' : 'datastore back') : 'datastore added');
    }
    for (const [id, e] of this.entries) {
      if (seen.has(id)) continue;
      e.conn.close();
      this.entries.delete(id);
      log.info({ datastore: id, address: e.address }, 'datastore no longer registered');
    }
    this.router.setNodes(this.nodes());
  }

  /** Every registered datastore as the router places over them, down ones flagged. */
  nodes(): DataNode[] {
    return [...this.entries].map(([id, e]) => ({ id, service: e.conn, down: !e.healthy }));
  }

  /** Addresses of the datastores in use, healthy ones first (logs, status). */
  addresses(): string[] {
    const list = [...this.entries.values()];
    return [...list.filter((e) => e.healthy), ...list.filter((e) => !e.healthy)].map((e) => e.address);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const e of this.entries.values()) e.conn.close();
    this.entries.clear();
    this.router.setNodes([]);
  }
}
