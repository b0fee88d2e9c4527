// The MDS's contract: the cluster (file systems, topology, client sessions). Implemented
// in-process by Mds and over gRPC by MdsClient.
export interface FsInfo {
  readonly fsId: number;
  readonly name: string;
  readonly chunkSize: number;
  readonly createdMs: number;
  /** Copies of each chunk object, on distinct datastores (1..5, fixed at creation). */
  readonly replicas: number;
}

export type ServerKind = 'metaserver' | 'datastore' | 'mds';

export interface ServerInfo {
  readonly id: string;
  readonly kind: ServerKind;
  readonly address: string;
  readonly lastHeartbeatMs: number;
  readonly healthy: boolean;
}

export interface SessionInfo {
  readonly sessionId: string;
  readonly fsId: number;
  readonly client: string;
  readonly mountpoint: string;
  readonly expiresMs: number;
}

/** What a client needs to mount: the file system and where to reach its services. */
export interface MountInfo {
  readonly fs: FsInfo;
  readonly session: SessionInfo;
  readonly metaservers: string[];
  readonly datastores: string[];
  readonly leaseMs: number;
}

export interface MdsService {
  /** chunkSize 0 = 4 MiB, replicas 0 (or none) = 1. */
  createFs(name: string, chunkSize: number, replicas?: number): Promise<FsInfo>;
  getFs(name: string): Promise<FsInfo>;
  listFs(): Promise<FsInfo[]>;
  register(kind: ServerKind, id: string, address: string): Promise<void>;
  heartbeat(kind: ServerKind, id: string, address: string): Promise<void>;
  listServers(kind?: ServerKind): Promise<ServerInfo[]>;
  /** Registers a mount and opens its session (lease). */
  mount(fsName: string, client: string, mountpoint: string): Promise<MountInfo>;
  keepalive(sessionId: string): Promise<SessionInfo>;
  unmount(sessionId: string): Promise<void>;
  listSessions(): Promise<SessionInfo[]>;
}
