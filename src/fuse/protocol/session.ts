// One FUSE connection: reads requests from the non-blocking /dev/fuse fd when it is readable,
// dispatches them to a RawFileSystem without waiting for one to finish before reading the next,
// writes replies, and ends cleanly however the mount goes away.
//
// Why this loop (docs/fuse-loop.md has the figures): one Node event loop owning everything, woken
// by a uv_poll on Node's own libuv loop (npm `epoll`'s watcher thread as the alternative), with
// synchronous non-blocking reads: measured closest to a C daemon for GETATTR round trips, keeps
// the inode table in one heap, and never parks a libuv threadpool thread in read(/dev/fuse)
// (which starves other fs work and can hang process exit).
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Epoll } from 'epoll';
import { Errno, FsError, errnoName, toErrno } from '../../common/errno';
import { moduleLogger, tracer } from '../../common/logger';
import { counter, gauge } from '../../common/metrics';
import * as ffi from './ffi';
import { dispatch } from './dispatch';
import { Opcode, opName } from './opcodes';
import { countRequest, observeDuration, registerOpStats } from './op-stats';
import type { Request } from './request';
import type { BackingFiles, FuseConnection, FuseSessionApi, MountOptions, Notifier, OpCounts, RawFileSystem } from './raw-fs';
import { encodeNotifyDelete, encodeNotifyInvalEntry, encodeNotifyInvalInode, encodeNotifyResend, OUT_HEADER_SIZE, writeOutHeader } from './wire';

const log = moduleLogger('fuse');
const tr = tracer('fuse');

const errorsTotal = counter({ name: 'kurve_fuse_errors_total', help: 'FUSE requests answered with an error, by opcode and errno', labelNames: ['op', 'errno'] as const });
// kurve_fuse_requests_total and kurve_fuse_request_duration_seconds: typed arrays, see op-stats.ts.
registerOpStats();
const liveSessions = new Set<FuseSession>();
gauge({
  name: 'kurve_fuse_inflight_requests', help: 'FUSE requests read but not yet answered',
  collect() { let n = 0; for (const s of liveSessions) n += s.inflight; this.set(n); },
});

/** Requests handled per wake-up before yielding, so replies and timers get their turn. */
const READ_BATCH = 32;
const ECONNABORTED = 103;
/** Requests at least this big (WRITE payloads) take the read buffer with them instead of a copy. */
const HANDOFF_BYTES = 64 * 1024;

export interface SessionInit {
  readonly fd: number;
  readonly mountpoint: string;
  readonly options: Required<Pick<MountOptions, 'maxWrite' | 'maxReadahead' | 'passthrough'>> & Pick<MountOptions, 'loop' | 'pollMicros' | 'slowMs' | 'onSlow'>;
}

export class FuseSession extends EventEmitter implements FuseSessionApi {
  readonly mountpoint: string;
  connectionId = 0;
  /** Set once INIT was answered (what the file system sees in init()). */
  conn: FuseConnection | undefined;
  readonly notify: Notifier;
  readonly backing: BackingFiles;
  readonly closed: Promise<void>;
  /** Async handlers by unique, for INTERRUPT. */
  readonly pending = new Map<number, Request>();
  inflight = 0;
  /** Lookup-count bugs seen (a forget the file system rejected); tests assert 0. */
  bugs = 0;
  /** Requests received per opcode. */
  readonly counts = new Float64Array(64);

  private readonly fd: number;
  private rbuf: Buffer;
  private readonly wbuf = Buffer.alloc(OUT_HEADER_SIZE + 4096);
  private epoll: Epoll | undefined;
  private uvPoll: ffi.LoopPoll | undefined;
  private ended = false;
  private notifyWrites = new Set<Promise<number>>();
  private resolveClosed!: () => void;
  private initWaiters: Array<{ ok: () => void; fail: (e: Error) => void }> = [];

  constructor(readonly fs: RawFileSystem, init: SessionInit) {
    super();
    this.fd = init.fd;
    this.mountpoint = init.mountpoint;
    this.opts = init.options;
    this.pollMs = (init.options.pollMicros ?? 0) / 1000;
    this.slowMs = init.options.slowMs ?? 0;
    this.rbuf = Buffer.allocUnsafe(this.opts.maxWrite + 8192);
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.notify = {
      invalInode: (ino, off, len) => this.sendNotify(encodeNotifyInvalInode(ino, off, len)),
      invalEntry: (parent, name) => this.sendNotify(encodeNotifyInvalEntry(parent, name)),
      delete: (parent, child, name) => this.sendNotify(encodeNotifyDelete(parent, child, name)),
      resend: () => this.sendNotify(encodeNotifyResend()),
    };
    // After end() the fd number may belong to another file: never ioctl it.
    const live = (): void => {
      if (this.ended) throw new FsError(Errno.ENODEV, 'the FUSE session has ended');
    };
    this.backing = {
      open: (fd) => (live(), ffi.backingOpen(this.fd, fd)),
      close: (id) => (live(), ffi.backingClose(this.fd, id)),
    };
    liveSessions.add(this);
  }

  readonly opts: SessionInit['options'];
  /** The poll window in ms (MountOptions.pollMicros). */
  private readonly pollMs: number;
  private pollQueued = false;
  /** MountOptions.slowMs (0 = off). */
  private readonly slowMs: number;

  get isClosed(): boolean {
    return this.ended;
  }

  /** Starts reading. Resolves when INIT was answered (rejects if the session ends first). */
  start(): Promise<void> {
    const ready = new Promise<void>((ok, fail) => this.initWaiters.push({ ok, fail }));
    if (this.opts.loop !== 'epoll') {
      this.uvPoll = ffi.pollOnLoop(this.fd, (status) => {
        this.onReadable();
        // status < 0 (POLLERR: the connection is gone): the read above normally saw ENODEV and
        // ended the session; libuv has stopped polling either way, so never linger half-alive.
        if (status < 0 && !this.ended) void this.end(`poll error ${status}`);
      });
      return ready;
    }
    this.epoll = new Epoll((err, _fd, _events) => {
      if (err) {
        log.error({ err }, 'epoll failed; ending the session');
        void this.end('epoll error');
        return;
      }
      this.onReadable();
    });
    this.epoll.add(this.fd, Epoll.EPOLLIN);
    return ready;
  }

  /** Called by dispatch once the INIT reply is out. */
  initDone(conn: FuseConnection): void {
    this.conn = conn;
    for (const w of this.initWaiters.splice(0)) w.ok();
  }

  /** The file system's init() failed: the mount is unusable, take it down. */
  initFailed(err: Error): void {
    log.error({ err }, 'file system init failed; unmounting');
    for (const w of this.initWaiters.splice(0)) w.fail(err);
    void this.unmount();
  }

  /** Another /dev/fuse fd on this connection (FUSE_DEV_IOC_CLONE), e.g. for a reader thread. The caller closes it. */
  cloneDevice(): number {
    if (this.ended) throw new FsError(Errno.ENODEV, 'the FUSE session has ended');
    return ffi.cloneDevice(this.fd);
  }

  opCounts(): OpCounts {
    const out: Record<string, number> = {};
    this.counts.forEach((n, op) => { if (n > 0) out[opName(op)] = n; });
    return out;
  }

  // ---- the read loop -----------------------------------------------------------------------

  private onReadable(): void {
    let pollUntil = 0;
    for (let i = 0; i < READ_BATCH && !this.ended; i++) {
      const n = ffi.devRead(this.fd, this.rbuf);
      if (n < 0) {
        const errno = -n;
        if (errno === Errno.EAGAIN) {
          // Poll window (see MountOptions.pollMicros): only with nothing in flight, since replies
          // of pending requests are written by callbacks that run after we return.
          if (this.pollMs <= 0 || this.pending.size > 0) return;
          const now = performance.now();
          if (pollUntil === 0) pollUntil = now + this.pollMs;
          else if (now >= pollUntil) return;
          i--;
          continue;
        }
        if (errno === Errno.EINTR || errno === Errno.ENOENT) continue; // ENOENT: interrupted before we read it
        // ENODEV: unmounted (or the connection was aborted); ECONNABORTED with ABORT_ERROR.
        if (errno !== Errno.ENODEV && errno !== ECONNABORTED) log.error({ errno: errnoName(errno) }, 'reading /dev/fuse failed; ending the session');
        void this.end(errno === Errno.ENODEV ? 'unmounted' : `read failed: ${errnoName(errno)}`);
        return;
      }
      if (n < 40) {
        log.error({ bytes: n }, 'short read from /dev/fuse; ending the session');
        void this.end('short read');
        return;
      }
      // Requests keep Buffer views only of large payloads; everything else is decoded (and
      // names copied) before the next read reuses the buffer.
      const buf = this.rbuf;
      if (n >= HANDOFF_BYTES) this.rbuf = Buffer.allocUnsafe(buf.length);
      this.inflight++;
      try {
        dispatch(this, buf, n);
      } catch (err) {
        // Handlers' errors are answered inside dispatch; this is a decoding bug. Keep serving.
        log.error({ err, opcode: buf.readUInt32LE(4) }, 'FUSE dispatch failed');
      }
    }
  }

  /** Counts a request (opcode is validated by dispatch). */
  count(opcode: number): void {
    if (opcode < this.counts.length) this.counts[opcode]++;
    countRequest(opcode);
  }

  // ---- replies -------------------------------------------------------------------------------

  /** A buffer with room for the out header + bodyLen: the shared reply buffer, or a new one if too small. */
  scratch(bodyLen: number): Buffer {
    return bodyLen + OUT_HEADER_SIZE <= this.wbuf.length ? this.wbuf : Buffer.alloc(OUT_HEADER_SIZE + bodyLen);
  }

  /** Reply with a body already written at OUT_HEADER_SIZE in `b` (wbuf, scratch() or a dir buffer). */
  replyBuf(req: Request, b: Buffer, bodyLen: number, traceDetail?: string): void {
    const len = OUT_HEADER_SIZE + bodyLen;
    writeOutHeader(b, 0, len, 0, req.h.uniqueLo, req.h.uniqueHi);
    this.write(req, () => ffi.devWrite(this.fd, b, len));
    this.finished(req, 0, traceDetail);
  }

  /** Reply with a separate data buffer (READ, READLINK, xattrs): one writev, no copy. */
  replyData(req: Request, data: Buffer): void {
    // Thrown before anything is written, so dispatch answers EIO instead of leaving the kernel waiting.
    if (!Buffer.isBuffer(data)) throw new TypeError(`${opName(req.opcode)} handler returned ${typeof data}, not a Buffer`);
    const hdr = Buffer.allocUnsafe(OUT_HEADER_SIZE);
    writeOutHeader(hdr, 0, OUT_HEADER_SIZE + data.length, 0, req.h.uniqueLo, req.h.uniqueHi);
    this.write(req, () => fs.writevSync(this.fd, [hdr, data]));
    this.finished(req, 0);
  }

  replyError(req: Request, errno: number): void {
    writeOutHeader(this.wbuf, 0, OUT_HEADER_SIZE, -errno, req.h.uniqueLo, req.h.uniqueHi);
    this.write(req, () => ffi.devWrite(this.fd, this.wbuf, OUT_HEADER_SIZE));
    this.finished(req, errno);
  }

  /**
   * FsError -> its errno (so do a gRPC error carrying one and a Node system error such as
   * EACCES, via toErrno); anything else is a bug in a handler: EIO and one log line.
   */
  replyThrown(req: Request, err: unknown): void {
    const errno = toErrno(err);
    if (errno > 0 && errno < 4096 && (errno !== Errno.EIO || err instanceof FsError)) {
      this.replyError(req, errno);
      return;
    }
    log.error({ err, op: opName(req.opcode), unique: req.unique, nodeid: req.nodeid }, `${opName(req.opcode)} handler failed; answering EIO`);
    this.replyError(req, Errno.EIO);
  }

  /** For requests that get no reply (FORGET, BATCH_FORGET, INTERRUPT). */
  noReply(req: Request): void {
    this.finished(req, 0);
  }

  private write(req: Request, op: () => number): void {
    if (this.ended) return; // the fd may already belong to someone else
    let errno = 0;
    try {
      const r = op();
      if (r < 0) errno = -r;
    } catch (err) {
      errno = (err as NodeJS.ErrnoException).errno ? Math.abs((err as NodeJS.ErrnoException).errno!) : Errno.EIO;
    }
    if (errno === 0 || errno === Errno.ENOENT) return; // ENOENT: the kernel no longer waits (interrupted)
    if (errno === Errno.ENODEV) {
      void this.end('unmounted');
      return;
    }
    log.error({ errno: errnoName(errno), op: opName(req.opcode), unique: req.unique }, 'writing a FUSE reply failed');
  }

  private finished(req: Request, errno: number, traceDetail?: string): void {
    this.inflight--;
    if (this.pending.delete(req.unique) && this.pending.size === 0 && this.pollMs > 0 && !this.pollQueued) {
      // The last asynchronous reply is out: poll from the check phase, after its callbacks.
      this.pollQueued = true;
      setImmediate(() => {
        this.pollQueued = false;
        if (!this.ended) this.onReadable();
      });
    }
    const ms = performance.now() - req.start;
    observeDuration(req.opcode, ms / 1000);
    if (this.slowMs > 0 && ms >= this.slowMs) this.reportSlow(req, ms);
    if (errno !== 0) errorsTotal.labels(opName(req.opcode), errnoName(errno)).inc();
    if (tr.on) tr.log(`tx ${req.unique}: ${errno === 0 ? 'OK' : errnoName(errno)}${traceDetail ? ` ${traceDetail}` : ''}`);
  }

  private reportSlow(req: Request, ms: number): void {
    try {
      this.opts.onSlow?.(req.opcode, req.nodeid, ms);
    } catch (err) {
      log.error({ err }, 'onSlow failed');
    }
  }

  // ---- notifications -------------------------------------------------------------------------

  /**
   * Written on the libuv threadpool, not the event loop: the kernel may make a notification wait
   * for a lock that a request we have not answered yet holds (a page being read, a directory
   * being modified), and the event loop must stay free to answer it.
   */
  private sendNotify(msg: Buffer): Promise<number> {
    if (this.ended) return Promise.resolve(-Errno.ENODEV);
    const p = new Promise<number>((resolve) => {
      fs.write(this.fd, msg, 0, msg.length, null, (err) => resolve(err ? -(Math.abs(err.errno ?? Errno.EIO)) : 0));
    });
    this.notifyWrites.add(p);
    void p.then((r) => {
      this.notifyWrites.delete(p);
      if (tr.on) tr.log(`notify ${msg.readInt32LE(4)}: ${r === 0 ? 'OK' : errnoName(-r)}`);
    });
    return p;
  }

  // ---- shutdown ------------------------------------------------------------------------------

  /** Detach-unmounts, then ends the session. Never waits for the kernel or for handlers. */
  async unmount(): Promise<void> {
    if (!this.ended) {
      const errno = ffi.sysUmount(this.mountpoint, ffi.MNT_DETACH);
      if (errno !== 0 && errno !== Errno.EINVAL && errno !== Errno.ENOENT) {
        log.warn({ mountpoint: this.mountpoint, errno: errnoName(errno) }, 'umount2 failed; closing the connection anyway');
      }
      await this.end('unmount');
    }
    return this.closed;
  }

  close(): Promise<void> {
    return this.unmount();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.unmount();
  }

  /** Ends the session: stop reading, close /dev/fuse (the kernel aborts what is left), emit 'closed'. */
  async end(reason: string): Promise<void> {
    if (this.ended) return this.closed;
    this.ended = true;
    liveSessions.delete(this);
    log.info({ mountpoint: this.mountpoint, reason }, 'FUSE session ended');
    this.uvPoll?.stop();
    try {
      this.epoll?.remove(this.fd).close();
    } catch {
      // already removed
    }
    for (const req of this.pending.values()) req.interrupt();
    const closeFd = (): void => {
      try {
        fs.closeSync(this.fd);
      } catch {
        // nothing to do
      }
    };
    if (this.notifyWrites.size === 0) {
      closeFd();
    } else {
      // A notification stuck behind a lock held by a request we will never answer only returns
      // once the connection is aborted (closing our fd does not abort it: the pending write holds
      // the file). And the fd must stay ours until every queued write has run.
      this.abortConnection();
      const done = Promise.all(this.notifyWrites);
      const finished = await Promise.race([done.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000).unref())]);
      if (finished) closeFd();
      else {
        log.warn({ pending: this.notifyWrites.size }, 'notifications still pending: /dev/fuse will be closed when they return');
        void done.then(closeFd);
      }
    }
    for (const w of this.initWaiters.splice(0)) w.fail(new FsError(Errno.ENODEV, `session ended before INIT (${reason})`));
    try {
      this.fs.destroy?.();
    } catch (err) {
      log.error({ err }, 'destroy failed');
    }
    this.resolveClosed();
    this.emit('closed', reason);
  }

  /**
   * Writes 1 to /sys/fs/fuse/connections/N/abort: every request the kernel waits for fails with
   * ENOTCONN. Mounts fusectl there first if nobody did (systemd normally does). Best effort.
   */
  abortConnection(): void {
    if (!this.connectionId) return;
    const dir = '/sys/fs/fuse/connections';
    try {
      if (!fs.existsSync(`${dir}/${this.connectionId}`) && fs.existsSync(dir)) ffi.sysMount('fusectl', dir, 'fusectl', 0, '');
      fs.writeFileSync(`${dir}/${this.connectionId}/abort`, '1');
    } catch (err) {
      log.warn({ err, connection: this.connectionId }, 'could not abort the FUSE connection');
    }
  }
}

/**
 * Synchronous last resort at process exit: detach every mount this process still serves. One
 * listener per process, shared through a global, however often this module is loaded (jest
 * loads it once per test file).
 */
const EXIT_HOOK = Symbol.for('kurve.fuse.exitUnmount');
type ExitHookGlobal = { [EXIT_HOOK]?: Set<() => void> };
function onProcessExit(fn: () => void): void {
  const g = globalThis as ExitHookGlobal;
  if (!g[EXIT_HOOK]) {
    const hooks = (g[EXIT_HOOK] = new Set());
    process.once('exit', () => { for (const h of hooks) h(); });
  }
  g[EXIT_HOOK].add(fn);
}
onProcessExit(() => {
  for (const s of liveSessions) ffi.sysUmount(s.mountpoint, ffi.MNT_DETACH);
});

export { Opcode };
