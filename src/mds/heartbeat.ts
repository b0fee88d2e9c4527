// Keeps a server (datastore, metaserver) registered with the MDS: Register once, then Heartbeat
// every interval (the MDS's requested interval unless overridden). Failures are logged once per
// outage, not per beat; the loop never throws and stop() waits for the beat in flight.
import { moduleLogger } from '../common/logger';
import { ServerKind } from './api';
import { MdsClient } from './client';
import { DEFAULT_HEARTBEAT_MS } from './mds';

const log = moduleLogger('heartbeat');

export interface HeartbeatOptions {
  /** MDS replica addresses. */
  readonly mds: string | readonly string[];
  readonly token?: string;
  readonly kind: ServerKind;
  readonly id: string;
  /** The address clients should use to reach this server. */
  readonly address: string;
  /** Beat period; default: what the MDS asks for (2 s until it answers). */
  readonly intervalMs?: number;
}

export interface Heartbeat {
  /** True once the MDS acknowledged a Register or Heartbeat, false after a failure. */
  readonly connected: () => boolean;
  stop(): Promise<void>;
}

export function startHeartbeat(opts: HeartbeatOptions): Heartbeat {
  // Each beat must finish well inside one interval so beats never pile up.
  const first = opts.intervalMs ?? DEFAULT_HEARTBEAT_MS;
  const client = new MdsClient(opts.mds, { token: opts.token, budgetMs: Math.max(200, first), attemptMs: Math.max(200, first / 2) });
  const interval = (): number => opts.intervalMs ?? client.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS;
  let registered = false;
  let connected = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;

  const beat = async () => {
    try {
      if (!registered) await client.register(opts.kind, opts.id, opts.address);
      else await client.heartbeat(opts.kind, opts.id, opts.address);
      if (!connected) log.info({ kind: opts.kind, id: opts.id, address: opts.address }, 'registered with the MDS');
      registered = true;
      connected = true;
    } catch (err) {
      if (connected || !registered) {
        log.warn({ kind: opts.kind, id: opts.id, err: (err as Error).message }, 'heartbeat to the MDS failed; retrying');
      }
      connected = false;
      // Re-register after an outage: the MDS may have restarted or changed leader.
      registered = false;
    }
  };
  const schedule = (delay: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      inFlight = beat().finally(() => {
        inFlight = undefined;
        schedule(interval());
      });
    }, delay);
    timer.unref();
  };
  schedule(0);
  return {
    connected: () => connected,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
      client.close();
    },
  };
}
