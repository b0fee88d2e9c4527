// The datastore's bulk listener: GET and PUT of chunk objects over raw TCP (framing in
// bulk-frame.ts) into the same ChunkStore the gRPC service uses. Each connection authenticates
// first when the datastore has a token, runs up to MAX_INFLIGHT requests at a time, and stops
// reading while the socket's send buffer is full or that many are running (backpressure both
// ways). A bad frame ends only its own connection.
import * as net from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { Errno, toErrno } from '../common/errno';
import { moduleLogger } from '../common/logger';
import { BulkProtocolError, encodeHeader, errorFrame, Frame, FrameDecoder, MAX_SMALL_PAYLOAD, Op } from './bulk-frame';
import { ChunkStore, MAX_OBJECT_BYTES } from './chunk-store';

const log = moduleLogger('datastore-bulk');

/** Requests one connection may have running; more wait (and reading stops) until one ends. */
const MAX_INFLIGHT = 8;
/** A connection that has not authenticated by then is closed. */
const AUTH_TIMEOUT_MS = 10_000;

export interface BulkServerOptions {
  /** Host to bind (the gRPC listen host). */
  readonly host: string;
  /** 0 (default) = a free port. */
  readonly port?: number;
  /** When set, a connection's first frame must be AUTH with this token. */
  readonly token?: string;
  readonly maxObjectBytes?: number;
  /** How long close() lets running requests finish (default 5 s). */
  readonly graceMs?: number;
}

export interface BulkServer {
  readonly port: number;
  /** Stops accepting, lets running requests finish (up to graceMs), closes every connection. */
  close(): Promise<void>;
}

function tokenMatches(got: Buffer, token: string): boolean {
  const want = Buffer.from(token, 'utf8');
  return got.length === want.length && timingSafeEqual(got, want);
}

class BulkConnection {
  private readonly decoder: FrameDecoder;
  private authed: boolean;
  private inflight = 0;
  private readonly queue: Frame[] = [];
  private paused = false;
  private ended = false;
  private onIdle: (() => void) | undefined;

  constructor(private readonly socket: net.Socket, private readonly store: ChunkStore, private readonly opts: BulkServerOptions) {
    this.authed = !opts.token;
    if (!this.authed) {
      const t = setTimeout(() => {
        if (!this.authed) this.refuse(Errno.EACCES, 'no AUTH in time');
      }, AUTH_TIMEOUT_MS);
      t.unref();
      socket.once('close', () => clearTimeout(t));
    }
    const maxObject = opts.maxObjectBytes ?? MAX_OBJECT_BYTES;
    this.decoder = new FrameDecoder((op) => {
      if (op === Op.AUTH || op === Op.GET) return MAX_SMALL_PAYLOAD;
      if (op === Op.PUT) return this.authed ? maxObject : MAX_SMALL_PAYLOAD;
      return -1;
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.flow());
    socket.on('error', (err) => log.debug({ err: err.message }, 'bulk connection error'));
    socket.on('close', () => {
      this.ended = true;
      this.queue.length = 0;
      this.checkIdle();
    });
  }

  /** Closes once running requests are answered (at once when none are). */
  closeWhenIdle(): Promise<void> {
    return new Promise((resolve) => {
      this.onIdle = () => {
        this.socket.destroy();
        resolve();
      };
      this.queue.length = 0;
      this.checkIdle();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private checkIdle(): void {
    if (this.inflight === 0 && this.onIdle) {
      const f = this.onIdle;
      this.onIdle = undefined;
      f();
    }
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    try {
      this.decoder.push(chunk, (f) => this.onFrame(f));
    } catch (err) {
      const damaged = err instanceof BulkProtocolError && err.damaged;
      this.refuse(damaged ? Errno.EIO : this.authed ? Errno.EINVAL : Errno.EACCES, `bad frame: ${(err as Error).message}`);
      return;
    }
    this.dispatch();
  }

  private onFrame(f: Frame): void {
    if (this.ended) return;
    if (f.op === Op.AUTH) {
      this.auth(f);
    } else if (!this.authed) {
      this.refuse(Errno.EACCES, 'not authenticated: the first frame must be AUTH with the token', f.id);
    } else {
      this.queue.push(f);
    }
  }

  private auth(f: Frame): void {
    if (this.opts.token && !tokenMatches(f.payload, this.opts.token)) {
      this.refuse(Errno.EACCES, 'missing or wrong token', f.id);
      return;
    }
    this.authed = true;
    this.send(encodeHeader({ op: Op.ANSWER, id: f.id }));
  }

  /** Answers with an error and closes this connection (a misbehaving or unauthorized peer). */
  private refuse(errno: number, message: string, id = 0): void {
    if (this.ended) return;
    log.warn({ peer: this.socket.remoteAddress, errno, reason: message }, 'bulk connection refused');
    this.ended = true;
    this.queue.length = 0;
    this.socket.end(errorFrame(id, errno, message));
    // A peer that does not close its side is cut off.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private dispatch(): void {
    while (this.queue.length > 0 && this.inflight < MAX_INFLIGHT && !this.ended) {
      const f = this.queue.shift()!;
      this.inflight++;
      this.run(f).finally(() => {
        this.inflight--;
        this.dispatch();
        this.checkIdle();
      });
    }
    this.flow();
  }

  /** Reads from the socket only while there is room to run and to answer. */
  private flow(): void {
    if (this.ended) return;
    const stop = this.queue.length > 0 || this.inflight >= MAX_INFLIGHT || this.socket.writableNeedDrain;
    if (stop && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!stop && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private async run(f: Frame): Promise<void> {
    try {
      if (f.op === Op.GET) {
        const { data } = await this.store.read(f.key, f.offset, f.length);
        this.send(encodeHeader({ op: Op.ANSWER, id: f.id, crc: crc32c(data), payloadLength: data.length }), data);
      } else {
        // The store checks the object against the writer's CRC32C and refuses a mismatch (EIO).
        await this.store.put(f.key, f.payload, f.crc);
        this.send(encodeHeader({ op: Op.ANSWER, id: f.id }));
      }
    } catch (err) {
      const errno = toErrno(err);
      const msg = err instanceof Error ? err.message : String(err);
      // FsError messages start with the errno's name, which the client puts back.
      this.send(errorFrame(f.id, errno, msg.replace(/^E[A-Z0-9]+: /, '')));
    }
  }

  private send(header: Buffer, data?: Buffer): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.cork();
    this.socket.write(header);
    if (data && data.length > 0) this.socket.write(data);
    this.socket.uncork();
    this.flow();
  }
}

/** Listens on opts.host:opts.port for bulk connections to `store`. */
export async function startBulkServer(store: ChunkStore, opts: BulkServerOptions): Promise<BulkServer> {
  const conns = new Set<BulkConnection>();
  const server = net.createServer((socket) => {
    const c = new BulkConnection(socket, store, opts);
    conns.add(c);
    socket.on('close', () => conns.delete(c));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err: err.message }, 'bulk listener error'));
  const port = (server.address() as net.AddressInfo).port;
  log.info({ host: opts.host, port }, 'datastore bulk transport listening');
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= (async () => {
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    const grace = new Promise<void>((resolve) => setTimeout(resolve, opts.graceMs ?? 5000).unref());
    await Promise.race([Promise.all([...conns].map((c) => c.closeWhenIdle())), grace]);
    for (const c of conns) c.destroy();
    await stopped;
  })());
  return { port, close };
}

/** The host part of HOST:PORT ([v6]:port too). */
export function hostOf(address: string): string {
  const i = address.lastIndexOf(':');
  const host = i < 0 ? address : address.slice(0, i);
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}
