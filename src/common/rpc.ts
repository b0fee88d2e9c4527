// gRPC plumbing shared by every service: async handlers, per-method metrics, request ids, the
// optional shared token, and the one place where thrown errors become gRPC statuses (and back).
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { errnoName, errnoToGrpcStatus, FsError } from './errno';
import { moduleLogger, tracer } from './logger';
import { counter, histogram, LATENCY_BUCKETS } from './metrics';

const log = moduleLogger('rpc');
const tr = tracer('rpc');

const rpcRequests = counter({
  name: 'kurve_rpc_requests_total',
  help: 'RPCs handled by this process, by service, method and gRPC status code',
  labelNames: ['service', 'method', 'code'] as const,
});
const rpcDuration = histogram({
  name: 'kurve_rpc_duration_seconds',
  help: 'Server-side RPC latency by service and method',
  labelNames: ['service', 'method'] as const,
  buckets: LATENCY_BUCKETS,
});
const rpcErrors = counter({
  name: 'kurve_rpc_errors_total',
  help: 'RPCs that ended in an error, by service, method and gRPC status code',
  labelNames: ['service', 'method', 'code'] as const,
});

/** What a handler knows about its call. */
export interface CallContext {
  readonly requestId: string;
  readonly method: string;
  readonly metadata: grpc.Metadata;
  /** True once the client went away (cancelled or deadline passed). */
  readonly cancelled: () => boolean;
  readonly log: ReturnType<typeof moduleLogger>;
}

/** A server-streaming handler writes messages and resolves when the stream is done. */
export interface StreamSink<Res> {
  write(msg: Res): boolean;
  /** Resolves when the client cancels or the server shuts down. */
  readonly closed: Promise<void>;
  readonly cancelled: () => boolean;
}

type UnaryDef<Req, Res> = grpc.MethodDefinition<Req, Res> & { requestStream: false; responseStream: false };
type ServerStreamDef<Req, Res> = grpc.MethodDefinition<Req, Res> & { requestStream: false; responseStream: true };
type ClientStreamDef<Req, Res> = grpc.MethodDefinition<Req, Res> & { requestStream: true; responseStream: false };

/**
 * Async implementation of a ts-proto service definition. Client-streaming handlers get the
 * request messages as an async iterable (`for await (const m of requests)`) and resolve the reply.
 */
export type AsyncService<D> = {
  [K in keyof D]: D[K] extends UnaryDef<infer Req, infer Res>
    ? (req: Req, ctx: CallContext) => Promise<Res>
    : D[K] extends ServerStreamDef<infer Req, infer Res>
      ? (req: Req, sink: StreamSink<Res>, ctx: CallContext) => Promise<void>
      : D[K] extends ClientStreamDef<infer Req, infer Res>
        ? (requests: AsyncIterable<Req>, ctx: CallContext) => Promise<Res>
        : never;
};

/** Invalid-argument error with a reason, for malformed requests. */
export class RpcError extends Error {
  /** `trailers` are sent as response metadata (e.g. `kurve-leader` on a follower's refusal). */
  constructor(readonly status: grpc.status, message: string, readonly trailers?: Readonly<Record<string, string>>) {
    super(message);
  }
}
export function invalidArgument(reason: string): RpcError {
  return new RpcError(grpc.status.INVALID_ARGUMENT, reason);
}

function toServiceError(err: unknown): Partial<grpc.ServiceError> {
  const metadata = new grpc.Metadata();
  if (err instanceof FsError) {
    metadata.set('kurve-errno', String(err.errno));
    return { code: errnoToGrpcStatus(err.errno), details: err.message, metadata };
  }
  if (err instanceof RpcError) {
    for (const [k, v] of Object.entries(err.trailers ?? {})) metadata.set(k, v);
    return { code: err.status, details: err.message, metadata };
  }
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  if (typeof e?.code === 'number' && typeof e.details === 'string') {
    // Already a gRPC error (e.g. from a downstream call): pass its status through.
    return { code: e.code, details: e.details, metadata };
  }
  return { code: grpc.status.INTERNAL, details: String(e?.message ?? err), metadata };
}

export interface ServerOptions {
  /** When set, every call must carry `authorization: Bearer <token>`. */
  readonly token?: string;
  /** Max message size in bytes (default 16 MiB: a 4 MiB chunk plus framing fits comfortably). */
  readonly maxMessageBytes?: number;
}

/**
 * A request whose bytes did not decode. startRpcServer's definitions return this instead of
 * throwing (grpc-js would answer INTERNAL), so the handler wrapper answers INVALID_ARGUMENT.
 */
class MalformedRequest {
  constructor(readonly reason: string) {}
}

function malformed(m: MalformedRequest): RpcError {
  return invalidArgument(`malformed request: ${m.reason}`);
}

function tolerantDefinition(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [key, m] of Object.entries(def)) {
    out[key] = {
      ...m,
      requestDeserialize: (buf: Buffer) => {
        try {
          return m.requestDeserialize(buf);
        } catch (err) {
          return new MalformedRequest((err as Error)?.message ?? String(err));
        }
      },
    };
  }
  return out;
}

async function* checkedStream(src: AsyncIterable<unknown>): AsyncIterable<unknown> {
  for await (const m of src) {
    if (m instanceof MalformedRequest) throw malformed(m);
    yield m;
  }
}

function checkToken(metadata: grpc.Metadata, token: string | undefined): boolean {
  if (!token) return true;
  const got = metadata.get('authorization')[0];
  return got === `Bearer ${token}`;
}

function newRequestId(metadata: grpc.Metadata): string {
  const given = metadata.get('kurve-request-id')[0];
  return typeof given === 'string' && given.length > 0 && given.length <= 64 ? given : randomBytes(6).toString('hex');
}

/** Adapts an AsyncService to grpc-js handlers, with metrics, request ids, token and error mapping. */
export function adaptService<D extends grpc.ServiceDefinition>(
  serviceName: string,
  definition: D,
  impl: AsyncService<D>,
  opts: ServerOptions = {},
): grpc.UntypedServiceImplementation {
  const out: grpc.UntypedServiceImplementation = {};
  for (const [key, def] of Object.entries(definition)) {
    const method = def.path.slice(def.path.lastIndexOf('/') + 1);
    const handler = (impl as Record<string, (...args: never[]) => Promise<unknown>>)[key];
    if (typeof handler !== 'function') throw new Error(`${serviceName}.${method} has no implementation`);
    const finish = (start: bigint, code: grpc.status) => {
      const secs = Number(process.hrtime.bigint() - start) / 1e9;
      rpcDuration.labels(serviceName, method).observe(secs);
      const codeName = grpc.status[code] ?? String(code);
      rpcRequests.labels(serviceName, method, codeName).inc();
      if (code !== grpc.status.OK) rpcErrors.labels(serviceName, method, codeName).inc();
    };
    if (!def.responseStream) {
      // Unary and client-streaming share everything but the first argument of the handler.
      type Call = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>;
      const input = (call: Call): unknown =>
        (def.requestStream ? checkedStream(call as grpc.ServerReadableStream<unknown, unknown>) : (call as grpc.ServerUnaryCall<unknown, unknown>).request);
      out[key] = (call: Call, callback: grpc.sendUnaryData<unknown>) => {
        const start = process.hrtime.bigint();
        const requestId = newRequestId(call.metadata);
        if (!checkToken(call.metadata, opts.token)) {
          finish(start, grpc.status.UNAUTHENTICATED);
          callback({ code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong token' });
          return;
        }
        const ctx: CallContext = {
          requestId, method, metadata: call.metadata, cancelled: () => call.cancelled,
          log: log.child({ reqId: requestId, method: `${serviceName}.${method}` }),
        };
        if (tr.on) tr.log('rx %s %s.%s', requestId, serviceName, method);
        const arg = input(call);
        if (arg instanceof MalformedRequest) {
          finish(start, grpc.status.INVALID_ARGUMENT);
          callback({ code: grpc.status.INVALID_ARGUMENT, details: malformed(arg).message });
          return;
        }
        (handler as (req: unknown, ctx: CallContext) => Promise<unknown>)(arg, ctx).then(
          (res) => {
            finish(start, grpc.status.OK);
            callback(null, res);
          },
          (err: unknown) => {
            const se = toServiceError(err);
            finish(start, se.code ?? grpc.status.INTERNAL);
            if (se.code === grpc.status.INTERNAL) ctx.log.error({ err }, 'rpc failed');
            else if (tr.on) tr.log('tx %s %s', requestId, se.details);
            callback(se as grpc.ServiceError);
          },
        );
      };
    } else {
      out[key] = (call: grpc.ServerWritableStream<unknown, unknown>) => {
        const start = process.hrtime.bigint();
        const requestId = newRequestId(call.metadata);
        if (!checkToken(call.metadata, opts.token)) {
          finish(start, grpc.status.UNAUTHENTICATED);
          // grpc-js turns an 'error' event into the call's status; destroy() would drop it (the
          // client then waits for its deadline).
          call.emit('error', Object.assign(new Error('missing or wrong token'), { code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong token' }));
          return;
        }
        const closed = new Promise<void>((resolve) => {
          call.once('cancelled', () => resolve());
          call.once('close', () => resolve());
          call.once('error', () => resolve());
        });
        if (call.request instanceof MalformedRequest) {
          finish(start, grpc.status.INVALID_ARGUMENT);
          const details = malformed(call.request).message;
          call.emit('error', Object.assign(new Error(details), { code: grpc.status.INVALID_ARGUMENT, details }));
          return;
        }
        const sink: StreamSink<unknown> = { write: (m) => call.write(m), closed, cancelled: () => call.cancelled };
        const ctx: CallContext = {
          requestId, method, metadata: call.metadata, cancelled: () => call.cancelled,
          log: log.child({ reqId: requestId, method: `${serviceName}.${method}` }),
        };
        (handler as (req: unknown, sink: StreamSink<unknown>, ctx: CallContext) => Promise<void>)(call.request, sink, ctx).then(
          () => {
            finish(start, grpc.status.OK);
            if (!call.cancelled) call.end();
          },
          (err: unknown) => {
            const se = toServiceError(err);
            finish(start, se.code ?? grpc.status.INTERNAL);
            if (se.code === grpc.status.INTERNAL) ctx.log.error({ err }, 'stream failed');
            if (!call.cancelled) call.emit('error', Object.assign(new Error(se.details), se));
          },
        );
      };
    }
  }
  return out;
}

export interface RpcServer {
  /** host:port actually bound (port 0 resolved). */
  readonly address: string;
  readonly server: grpc.Server;
  /** Graceful: stop accepting, let in-flight calls finish (up to graceMs), then force. */
  close(graceMs?: number): Promise<void>;
}

/** Binds a grpc-js server on listen (HOST:PORT, port 0 = free port) with the given services. */
export async function startRpcServer(
  listen: string,
  services: ReadonlyArray<{ definition: grpc.ServiceDefinition; impl: grpc.UntypedServiceImplementation }>,
  opts: ServerOptions = {},
): Promise<RpcServer> {
  const max = opts.maxMessageBytes ?? 16 * 1024 * 1024;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': max,
    'grpc.max_send_message_length': max,
  });
  for (const s of services) server.addService(tolerantDefinition(s.definition), s.impl);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  const host = listen.slice(0, listen.lastIndexOf(':')) || '127.0.0.1';
  const address = `${host}:${port}`;
  return {
    address,
    server,
    close: (graceMs = 5000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        timer.unref();
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// Client side

export interface ClientOptions {
  readonly token?: string;
  /** Default per-call deadline (ms). */
  readonly deadlineMs?: number;
  readonly maxMessageBytes?: number;
}

export function clientChannelOptions(opts: ClientOptions): grpc.ClientOptions {
  const max = opts.maxMessageBytes ?? 16 * 1024 * 1024;
  const interceptors: grpc.Interceptor[] = [];
  if (opts.token) {
    const token = opts.token;
    interceptors.push((options, nextCall) =>
      new grpc.InterceptingCall(nextCall(options), {
        start(metadata, listener, next) {
          metadata.set('authorization', `Bearer ${token}`);
          next(metadata, listener);
        },
      }),
    );
  }
  return {
    'grpc.max_receive_message_length': max,
    'grpc.max_send_message_length': max,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    // grpc-js backs reconnects off up to 120 s: a client whose server was down for a minute would
    // wait up to that long after it is back (every file operation EIO meanwhile). Services here
    // restart in seconds, so reconnect attempts are capped at 2 s apart.
    'grpc.initial_reconnect_backoff_ms': 250,
    'grpc.max_reconnect_backoff_ms': 2_000,
    interceptors,
  };
}

type UnaryMethod<Req, Res> = (
  req: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  cb: (err: grpc.ServiceError | null, res: Res) => void,
) => grpc.ClientUnaryCall;

/** Promisified unary call with a deadline: `await unary(client, client.lookup, req)`. */
export function unary<Req, Res>(
  client: grpc.Client,
  method: UnaryMethod<Req, Res>,
  req: Req,
  deadlineMs = 10_000,
  metadata = new grpc.Metadata(),
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    method.call(client, req, metadata, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Human-readable form of any RPC error, for CLI output. */
export function describeRpcError(err: unknown): string {
  const e = err as Partial<grpc.ServiceError> & { message?: string };
  const carried = e?.metadata?.get?.('kurve-errno')?.[0];
  if (typeof carried === 'string') return `${errnoName(Number(carried))}: ${e.details ?? ''}`.trim();
  if (typeof e?.code === 'number') {
    if (e.code === grpc.status.UNAVAILABLE) return `service unavailable (${e.details ?? 'connection failed'})`;
    return `${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message ?? ''}`;
  }
  return String(e?.message ?? err);
}
