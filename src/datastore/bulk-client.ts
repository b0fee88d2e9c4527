// The client end of the bulk transport (bulk-frame.ts): one TCP connection to one datastore,
// opened on first use (and again after it failed), requests pipelined and matched to answers by
// id. Every request has a deadline; a connection that dies or stops answering fails what is
// pending with DatastoreUnreachableError, so a DataRouter moves on to another datastore. A
// connection that cannot be opened at all is a BulkConnectError: the caller uses gRPC instead.
import * as net from 'node:net';
import { Errno, FsError } from '../common/errno';
import { DatastoreUnreachableError } from './api';
import { BulkProtocolError, encodeHeader, Frame, FrameDecoder, FrameFields, MAX_SMALL_PAYLOAD, Op, PAYLOAD_SLACK } from './bulk-frame';
import { MAX_OBJECT_BYTES } from './chunk-store';

/** The bulk port could not be reached (refused, no route): not evidence the datastore is down. */
export class BulkConnectError extends Error {
  override readonly name = 'BulkConnectError';
}

interface Pending {
  readonly resolve: (f: Frame) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class BulkChannel {
  private socket: net.Socket | undefined;
  private ready: Promise<net.Socket> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private drained: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly token?: string,
  ) {}

  get address(): string {
    return `${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  /**
   * Sends one request and resolves with its answer frame (errno set when the datastore refused
   * it). Rejects with BulkConnectError when no connection could be opened, FsError EACCES when
   * the token was refused, DatastoreUnreachableError when the connection failed or the deadline
   * passed.
   */
  async request(fields: Omit<FrameFields, 'id'>, payload: Buffer | undefined, deadlineMs: number): Promise<Frame> {
    const deadline = Date.now() + deadlineMs;
    const reused = this.socket !== undefined && !this.socket.destroyed && !this.ready;
    try {
      return await this.send(fields, payload, deadline);
    } catch (err) {
      // A connection that sat idle may have been closed by the datastore (restarted, its bulk
      // listener closed) before we saw it: one more try on a fresh one. Gets and puts of
      // immutable objects are idempotent.
      const lost = err instanceof DatastoreUnreachableError && err.errno === Errno.EIO && !this.closed;
      if (!reused || !lost || Date.now() >= deadline) throw err;
      return this.send(fields, payload, deadline);
    }
  }

  private async send(fields: Omit<FrameFields, 'id'>, payload: Buffer | undefined, deadline: number): Promise<Frame> {
    const socket = await this.connect(deadline);
    while (this.drained) {
      // The datastore stopped reading: wait for room, but never past the deadline.
      const drained = this.drained;
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([
        drained.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
      if (!inTime) {
        const err = new DatastoreUnreachableError(Errno.ETIMEDOUT, `datastore bulk ${this.address}: deadline exceeded (not reading)`);
        if (this.socket === socket) this.teardown(err);
        throw err;
      }
    }
    if (socket !== this.socket || socket.destroyed) throw this.lost('connection lost');
    const id = this.allocId();
    const answer = this.expect(id, deadline);
    socket.cork();
    socket.write(encodeHeader({ ...fields, id, payloadLength: payload?.length ?? 0 }, fields.crc === undefined ? payload : undefined));
    let ok = true;
    if (payload && payload.length > 0) ok = socket.write(payload);
    socket.uncork();
    if (!ok && !this.drained) {
      this.drained = new Promise<void>((resolve) => {
        const done = () => {
          socket.off('drain', done);
          socket.off('close', done);
          this.drained = undefined;
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
    }
    return answer;
  }

  /**
   * Refuses new requests; the connection ends once the pending ones are answered (or their
   * deadlines pass), like a gRPC channel's close(): a client replaced while an upload runs (a
   * datastore seen "back" by the directory) must not fail that upload. No handle stays open.
   */
  close(): void {
    this.closed = true;
    if (this.pending.size === 0) this.teardown(this.lost('client closed'));
  }

  private allocId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return id;
  }

  private lost(why: string): DatastoreUnreachableError {
    return new DatastoreUnreachableError(Errno.EIO, `datastore bulk ${this.address}: ${why}`);
  }

  private expect(id: number, deadline: number): Promise<Frame> {
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        // No answer in time: the datastore hangs or the network does; nothing on this
        // connection can be trusted to arrive, so every pending call fails over.
        this.teardown(new DatastoreUnreachableError(Errno.ETIMEDOUT, `datastore bulk ${this.address}: deadline exceeded`));
      }, Math.max(0, deadline - Date.now()));
      this.pending.set(id, { resolve, reject, timer });
      this.socket?.ref();
    });
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (this.pending.size === 0) {
      if (this.closed) queueMicrotask(() => this.teardown(this.lost('client closed')));
      else this.socket?.unref();
    }
    return p;
  }

  private teardown(err: Error): void {
    const s = this.socket;
    this.socket = undefined;
    this.ready = undefined;
    s?.destroy();
    for (const id of [...this.pending.keys()]) this.settle(id)!.reject(err);
  }

  private connect(deadline: number): Promise<net.Socket> {
    if (this.closed) return Promise.reject(this.lost('client closed'));
    if (this.socket && !this.socket.destroyed && !this.ready) return Promise.resolve(this.socket);
    return (this.ready ??= this.open(deadline));
  }

  private open(deadline: number): Promise<net.Socket> {
    return new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ host: this.host, port: this.port });
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 10_000);
      this.socket = socket;
      let connected = false;
      const fail = (err: Error) => {
        if (this.socket === socket) this.ready = undefined;
        if (this.socket === socket) this.socket = undefined;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new DatastoreUnreachableError(Errno.ETIMEDOUT, `datastore bulk ${this.address}: connect deadline exceeded`)), Math.max(0, deadline - Date.now()));
      timer.unref();
      const decoder = new FrameDecoder((op) => (op === Op.ANSWER ? MAX_OBJECT_BYTES + PAYLOAD_SLACK : -1));
      socket.on('data', (chunk: Buffer) => {
        let frames: Frame[];
        try {
          frames = decoder.push(chunk);
        } catch (err) {
          // A damaged header: the bytes of this connection cannot be trusted (EIO, like a CRC
          // mismatch of a payload); anything else is a datastore speaking nonsense.
          const e = err instanceof BulkProtocolError && err.damaged
            ? new FsError(Errno.EIO, `datastore bulk ${this.address}: ${err.message}`)
            : this.lost(`bad answer: ${(err as Error).message}`);
          if (this.socket === socket) this.teardown(e);
          return;
        }
        for (const f of frames) {
          if (f.id === 0 && f.errno !== 0) {
            // The datastore refused the connection itself (token, a frame it could not parse).
            const e = new FsError(f.errno, `datastore bulk ${this.address}: ${f.payload.toString('utf8')}`);
            if (this.socket === socket) this.teardown(e);
            return;
          }
          this.settle(f.id)?.resolve(f);
        }
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (!connected) fail(new BulkConnectError(`datastore bulk ${this.address}: ${err.code ?? err.message}`));
      });
      socket.on('close', () => {
        if (!connected) fail(new BulkConnectError(`datastore bulk ${this.address}: closed while connecting`));
        else if (this.socket === socket) this.teardown(this.lost('connection lost'));
      });
      socket.once('connect', () => {
        connected = true;
        if (!this.token) {
          clearTimeout(timer);
          this.ready = undefined;
          socket.unref();
          resolve(socket);
          return;
        }
        const token = Buffer.from(this.token, 'utf8');
        if (token.length > MAX_SMALL_PAYLOAD) {
          fail(new FsError(Errno.EINVAL, 'token too long for the bulk transport'));
          return;
        }
        const id = this.allocId();
        this.expect(id, deadline).then((f) => {
          clearTimeout(timer);
          if (f.errno !== 0) {
            fail(new FsError(f.errno, `datastore bulk ${this.address}: ${f.payload.toString('utf8')}`));
            return;
          }
          this.ready = undefined;
          if (this.pending.size === 0) socket.unref();
          resolve(socket);
        }, (err: Error) => fail(err));
        socket.write(encodeHeader({ op: Op.AUTH, id }, token));
        socket.write(token);
      });
    });
  }
}
