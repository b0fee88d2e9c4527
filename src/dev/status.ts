// The cluster at a glance for `kurve status`: every MDS replica asked directly (role, pid, uptime),
// then the leader for file systems, servers and sessions, and a health verdict with reasons.
import * as grpc from '@grpc/grpc-js';
import { clientChannelOptions, describeRpcError, unary } from '../common/rpc';
import { HealthClient, HealthResponse } from '../gen/common';
import { MdsClient } from '../mds/client';
import type { FsInfo, ServerInfo, SessionInfo } from '../mds/api';

export interface ReplicaStatus {
  readonly addr: string;
  readonly reachable: boolean;
  readonly role: 'leader' | 'follower' | 'unreachable';
  readonly pid?: number;
  readonly uptimeMs?: number;
  readonly version?: string;
  /** Who this replica thinks leads ('' when it does not know). */
  readonly sees?: string;
  readonly error?: string;
}

export interface ClusterStatus {
  readonly leader: { readonly addr: string; readonly pid: number } | null;
  readonly mds: ReplicaStatus[];
  readonly metaservers: ServerInfo[];
  readonly datastores: ServerInfo[];
  readonly fileSystems: FsInfo[];
  readonly sessions: SessionInfo[];
  readonly health: { readonly ok: boolean; readonly problems: string[] };
}

async function health(addr: string, token: string | undefined, ms: number): Promise<HealthResponse> {
  const c = new HealthClient(addr, grpc.credentials.createInsecure(), clientChannelOptions({ token }));
  try {
    return await unary(c, c.check, {}, ms);
  } finally {
    c.close();
  }
}

async function replica(addr: string, token: string | undefined, ms: number): Promise<ReplicaStatus> {
  const client = new MdsClient([addr], { token, budgetMs: ms, attemptMs: ms });
  try {
    const [l, h] = await Promise.all([client.leader(), health(addr, token, ms)]);
    return { addr, reachable: true, role: l.isLeader ? 'leader' : 'follower', pid: h.pid, uptimeMs: h.uptimeMs, version: h.version, sees: l.leader };
  } catch (err) {
    return { addr, reachable: false, role: 'unreachable', error: describeRpcError(err) };
  } finally {
    client.close();
  }
}

/** Asks every given MDS address, then the leader. Never throws for an unreachable cluster: it reports it. */
export async function clusterStatus(mds: readonly string[], opts: { token?: string; timeoutMs?: number } = {}): Promise<ClusterStatus> {
  const ms = opts.timeoutMs ?? 2000;
  const replicas = await Promise.all(mds.map((a) => replica(a, opts.token, ms)));
  const problems: string[] = [];
  const leaders = replicas.filter((r) => r.role === 'leader');
  if (leaders.length > 1) problems.push(`${leaders.length} replicas claim to lead: ${leaders.map((l) => l.addr).join(', ')}`);
  let leader = leaders[0];
  // A leader outside the given list (or not reachable directly) is still named by the followers.
  const hinted = replicas.find((r) => r.sees)?.sees;
  if (!leader && hinted) {
    const r = await replica(hinted, opts.token, ms);
    if (r.role === 'leader') leader = r;
  }
  for (const r of replicas) if (!r.reachable) problems.push(`MDS ${r.addr} unreachable (${r.error})`);
  let servers: ServerInfo[] = [];
  let fileSystems: FsInfo[] = [];
  let sessions: SessionInfo[] = [];
  if (!leader) {
    problems.push('no MDS leader');
  } else {
    const client = new MdsClient([leader.addr], { token: opts.token, budgetMs: ms, attemptMs: ms });
    try {
      [servers, fileSystems, sessions] = await Promise.all([client.listServers(), client.listFs(), client.listSessions()]);
    } catch (err) {
      problems.push(`leader ${leader.addr} did not answer: ${describeRpcError(err)}`);
    } finally {
      client.close();
    }
  }
  const metaservers = servers.filter((s) => s.kind === 'metaserver');
  const datastores = servers.filter((s) => s.kind === 'datastore');
  if (leader) {
    for (const [what, list] of [['metaserver', metaservers], ['datastore', datastores]] as const) {
      if (list.length === 0) problems.push(`no ${what} registered`);
      for (const s of list) if (!s.healthy) problems.push(`${what} ${s.id} at ${s.address} missed its heartbeats`);
    }
  }
  return {
    leader: leader ? { addr: leader.addr, pid: leader.pid ?? 0 } : null,
    mds: replicas,
    metaservers,
    datastores,
    fileSystems,
    sessions,
    health: { ok: problems.length === 0, problems },
  };
}

function ago(ms: number | undefined): string {
  if (ms === undefined) return '';
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

/** The human form: one line per fact, aligned. */
export function formatStatus(st: ClusterStatus): string {
  const lines: string[] = [];
  const row = (k: string, v: string) => lines.push(`${k.padEnd(13)}${v}`);
  row('leader', st.leader ? `${st.leader.addr} (pid ${st.leader.pid})` : 'NONE');
  for (const r of st.mds) {
    row('mds', r.reachable ? `${r.addr}  ${r.role.padEnd(8)}  pid ${r.pid}  up ${ago(r.uptimeMs)}` : `${r.addr}  unreachable`);
  }
  for (const [k, list] of [['metaserver', st.metaservers], ['datastore', st.datastores]] as const) {
    if (list.length === 0) row(k, '(none)');
    for (const s of list) row(k, `${s.address}  ${s.healthy ? 'healthy' : 'UNHEALTHY'}  ${s.id}`);
  }
  if (st.fileSystems.length === 0) row('file system', '(none)');
  for (const f of st.fileSystems) row('file system', `${f.name}  id ${f.fsId}  chunk ${f.chunkSize / 1024 / 1024} MiB  replicas ${f.replicas}`);
  row('sessions', String(st.sessions.length));
  for (const s of st.sessions) row('', `${s.client} on ${s.mountpoint} (fs ${s.fsId})`);
  row('health', st.health.ok ? 'OK' : `DEGRADED\n${st.health.problems.map((p) => `  - ${p}`).join('\n')}`);
  return `${lines.join('\n')}\n`;
}
