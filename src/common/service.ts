// The plumbing every Kurve service process shares: one gRPC server (with kurve.common.Health), the
// /metrics endpoint, graceful shutdown (stop accepting, drain in-flight calls, close stores) and
// SIGTERM/SIGINT handling for the CLI. Services hand in {definition, impl} pairs, so `kurve up`
// can put several services on one server.
import * as grpc from '@grpc/grpc-js';
import { errnoName, FsError, toErrno } from './errno';
import { moduleLogger } from './logger';
import { collectProcessMetrics, MetricsServer, startMetricsServer } from './metrics';
import { adaptService, RpcServer, ServerOptions, startRpcServer } from './rpc';
import { HealthResponse, HealthService } from '../gen/common';

const log = moduleLogger('service');

/** A service ready to add to a grpc-js server: what adaptService() produced, plus its definition. */
export interface RpcService {
  readonly definition: grpc.ServiceDefinition;
  readonly impl: grpc.UntypedServiceImplementation;
}

/** Kurve's version, reported by Health. */
export const KURVE_VERSION: string = (() => {
  try {
    return (require('../../package.json') as { version: string }).version;
  } catch {
    // dist/src/common -> ../../../package.json
    return (require('../../../package.json') as { version: string }).version;
  }
})();

/** The kurve.common.Health service: who answers (service name), version, uptime and pid. */
export function healthService(service: string, opts: ServerOptions = {}): RpcService {
  const started = Date.now();
  const impl = adaptService('health', HealthService, {
    check: async (): Promise<HealthResponse> => ({
      service, version: KURVE_VERSION, uptimeMs: Date.now() - started, pid: process.pid,
    }),
  }, opts);
  return { definition: HealthService, impl };
}

export interface ServiceProcessOptions {
  /** Shown by Health and in logs: "mds", "datastore", "metaserver", "kurve" (all-in-one). */
  readonly name: string;
  /** HOST:PORT for gRPC; port 0 picks a free port. */
  readonly listen: string;
  /** The shared token every RPC must carry (also pass it to adaptService for each service). */
  readonly token?: string;
  /** HOST:PORT for /metrics; empty or undefined = no metrics endpoint. */
  readonly metricsListen?: string;
  /** The services to serve (Health is added automatically). */
  readonly services: readonly RpcService[];
  /**
   * Called once on close, after the gRPC server drained: stop background work, close stores.
   * Runs in order; one failing does not stop the others.
   */
  readonly onClose?: ReadonlyArray<() => Promise<void> | void>;
  /** How long close() lets in-flight calls finish before cancelling them (default 5 s). */
  readonly graceMs?: number;
}

export interface ServiceProcess {
  readonly name: string;
  /** host:port actually bound. */
  readonly address: string;
  readonly metricsAddress?: string;
  readonly rpc: RpcServer;
  /** Graceful and idempotent: stop accepting, let in-flight calls finish, run onClose, close /metrics. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts gRPC (+ Health) and /metrics; on failure nothing stays open. */
export async function startServiceProcess(opts: ServiceProcessOptions): Promise<ServiceProcess> {
  collectProcessMetrics();
  const rpcOpts = { token: opts.token };
  let metrics: MetricsServer | undefined;
  if (opts.metricsListen) {
    metrics = await startMetricsServer(opts.metricsListen).catch((err: Error) => {
      throw new Error(`cannot serve /metrics on ${opts.metricsListen}: ${err.message}`);
    });
  }
  let rpc: RpcServer;
  try {
    rpc = await startRpcServer(opts.listen, [...opts.services, healthService(opts.name, rpcOpts)], rpcOpts);
  } catch (err) {
    await metrics?.close();
    throw new Error(`cannot listen on ${opts.listen}: ${(err as Error).message}`);
  }
  log.info({ service: opts.name, address: rpc.address, metrics: metrics?.address }, `${opts.name} listening`);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      log.info({ service: opts.name }, `${opts.name} shutting down`);
      await rpc.close(opts.graceMs ?? 5000);
      for (const fn of opts.onClose ?? []) {
        try {
          await fn();
        } catch (err) {
          log.error({ err, service: opts.name }, 'error while closing');
        }
      }
      await metrics?.close();
      log.info({ service: opts.name }, `${opts.name} stopped`);
    })();
    return closing;
  };
  return { name: opts.name, address: rpc.address, metricsAddress: metrics?.address, rpc, close, [Symbol.asyncDispose]: close };
}

/**
 * For CLI entry points only: on SIGTERM or SIGINT close gracefully and exit 0 (1 if closing
 * failed or took longer than hardLimitMs). A second signal while closing exits at once. Tests
 * running services in-process should call close() themselves instead.
 */
export function exitOnSignal(target: { readonly name?: string; close(): Promise<void> }, hardLimitMs = 15_000): void {
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      log.warn({ signal: sig }, 'second signal: exiting now');
      process.exit(1);
    }
    signalled = true;
    log.info({ signal: sig }, `${target.name ?? 'service'}: received ${sig}, shutting down`);
    // Never hang on the way out: a store that does not close in time is abandoned.
    setTimeout(() => {
      log.error({ hardLimitMs }, 'shutdown took too long: exiting');
      process.exit(1);
    }, hardLimitMs).unref();
    target.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * Client side: any error from a gRPC call as an FsError carrying the server's errno (the
 * `kurve-errno` trailer, else the status mapping), with `context` (e.g. "datastore 1.2.3.4:6703")
 * in front of the server's message.
 */
export function rpcFsError(err: unknown, context?: string): FsError {
  if (err instanceof FsError) return err;
  const errno = toErrno(err);
  const e = err as { details?: unknown; message?: unknown };
  let details = typeof e?.details === 'string' && e.details ? e.details : String(e?.message ?? err);
  // The server's message already starts with the errno name (FsError's format): don't repeat it.
  const prefix = `${errnoName(errno)}: `;
  if (details.startsWith(prefix)) details = details.slice(prefix.length);
  // grpc-js appends an often empty resolver note to connection failures.
  details = details.replace(/\s*Resolution note:\s*$/, '');
  return new FsError(errno, context ? `${context}: ${details}` : details);
}

/**
 * For CLI entry points: grpc-js prints its own error lines to stderr (e.g. a second copy of a
 * bind failure); our logs and messages already say it. GRPC_VERBOSITY set by the user wins.
 */
export function quietGrpc(): void {
  if (!process.env.GRPC_VERBOSITY) grpc.setLogVerbosity(grpc.logVerbosity.NONE);
}
