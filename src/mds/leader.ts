// Who leads the MDS. Embedded mode always leads; an etcd election implements the same interface
// later. Followers refuse calls with UNAVAILABLE and the leader's address in the `kurve-leader`
// trailer, which MdsClient follows.
import * as grpc from '@grpc/grpc-js';
import { RpcError } from '../common/rpc';

/** gRPC trailer (response metadata) key carrying the leader's address on a follower's refusal. */
export const LEADER_METADATA_KEY = 'kurve-leader';

export interface LeaderElection {
  /** True while this replica may serve (and run background work such as session expiry). */
  isLeader(): boolean;
  /** The current leader's client-facing address, when known. */
  leaderAddress(): string | undefined;
  /** Called with true when this replica becomes leader and false when it stops; returns unsubscribe. */
  onChange(cb: (leader: boolean) => void): () => void;
  close(): Promise<void>;
}

/** The single-replica case: always the leader, at `address` (if known). */
export class AlwaysLeader implements LeaderElection {
  constructor(private address?: string) {}
  isLeader(): boolean {
    return true;
  }
  leaderAddress(): string | undefined {
    return this.address;
  }
  setAddress(address: string): void {
    this.address = address;
  }
  onChange(): () => void {
    return () => undefined;
  }
  async close(): Promise<void> {}
}

/** The error a follower answers with (UNAVAILABLE + `kurve-leader` trailer when the leader is known). */
export function notLeaderError(leader: string | undefined): RpcError {
  return new RpcError(
    grpc.status.UNAVAILABLE,
    leader ? `not the MDS leader; the leader is ${leader}` : 'not the MDS leader; no leader elected yet',
    leader ? { [LEADER_METADATA_KEY]: leader } : undefined,
  );
}

/** The leader hint carried by an error, if any. */
export function leaderHint(err: unknown): string | undefined {
  const md = (err as { metadata?: unknown })?.metadata;
  if (!(md instanceof grpc.Metadata)) return undefined;
  const v = md.get(LEADER_METADATA_KEY)[0];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}
