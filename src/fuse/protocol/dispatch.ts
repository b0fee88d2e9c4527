// Request dispatch: decodes each request body (include/uapi/linux/fuse.h layouts), calls the
// RawFileSystem method, encodes its reply. ENOSYS for what the file system does not implement
// and EIO for what it throws are decided here, once, never per handler.
import { Errno, FsError } from '../../common/errno';
import { moduleLogger, tracer } from '../../common/logger';
import { DirentBuffer, DirentPlusBuffer } from './dirent';
import { negotiateInit } from './init';
import { Opcode, opName, opSpec } from './opcodes';
import type { AttrOut, CreateOut, EntryOut, LseekOut, OpenOut, RawFileSystem, Reply, StatfsOut, WriteOut } from './raw-fs';
import { Request } from './request';
import type { FuseSession } from './session';
import {
  ATTR_OUT_SIZE, ENTRY_OUT_SIZE, GETXATTR_OUT_SIZE, IN_HEADER_SIZE, LSEEK_OUT_SIZE, OPEN_OUT_SIZE, OUT_HEADER_SIZE,
  KSTATFS_SIZE, WRITE_OUT_SIZE, decodeInHeader, decodeSetattrIn, getI64, getU64, putU64, readName,
  writeAttrOut, writeEntryOut, writeOpenOut, writeStatfs,
} from './wire';

const log = moduleLogger('fuse');
const tr = tracer('fuse');
const H = IN_HEADER_SIZE;

/** A handler bound to the file system by call(): fs.method or a thunk that ignores both arguments. */
type Handler<A, T> = (this: RawFileSystem, ctx: Request, arg: A) => Reply<T>;
/** Writes the reply; module-level functions, so a request allocates no closure for it. */
type Ok<A, T> = (s: FuseSession, req: Request, v: T, arg: A) => void;

/**
 * Runs `f.call(fs, req, arg)`; a sync result replies at once, a Promise registers the request as
 * pending. Handler and reply writer are passed apart (not as closures over the request): the
 * hot requests (LOOKUP, GETATTR, CREATE, FLUSH, RELEASE: five per file create) allocate none.
 */
function call<A, T>(s: FuseSession, req: Request, f: Handler<A, T>, arg: A, ok: Ok<A, T>): void {
  let r: Reply<T>;
  try {
    r = f.call(s.fs, req, arg);
  } catch (err) {
    s.replyThrown(req, err);
    return;
  }
  // Duck-typed: a promise from another realm (Node core APIs under jest) is not `instanceof Promise`.
  if (typeof (r as PromiseLike<unknown> | undefined)?.then === 'function') {
    s.pending.set(req.unique, req);
    (r as PromiseLike<T | FsError>).then((v) => settle(s, req, v, arg, ok), (err: unknown) => s.replyThrown(req, err));
    return;
  }
  settle(s, req, r as T | FsError, arg, ok);
}

function settle<A, T>(s: FuseSession, req: Request, v: T | FsError, arg: A, ok: Ok<A, T>): void {
  if (s.isClosed) return;
  if (v instanceof FsError) {
    s.replyThrown(req, v);
    return;
  }
  try {
    ok(s, req, v, arg);
  } catch (err) {
    s.replyThrown(req, err);
  }
}

function replyEntry(s: FuseSession, req: Request, e: EntryOut): void {
  const b = s.scratch(ENTRY_OUT_SIZE);
  writeEntryOut(b, OUT_HEADER_SIZE, e);
  s.replyBuf(req, b, ENTRY_OUT_SIZE, tr.on ? `n${e.nodeid}` : undefined);
}
function replyEmpty(s: FuseSession, req: Request): void {
  s.replyBuf(req, s.scratch(0), 0);
}
function replyAttr(s: FuseSession, req: Request, a: AttrOut): void {
  const b = s.scratch(ATTR_OUT_SIZE);
  writeAttrOut(b, OUT_HEADER_SIZE, a);
  s.replyBuf(req, b, ATTR_OUT_SIZE);
}
function replyOpen(s: FuseSession, req: Request, o: OpenOut): void {
  const b = s.scratch(OPEN_OUT_SIZE);
  writeOpenOut(b, OUT_HEADER_SIZE, o);
  s.replyBuf(req, b, OPEN_OUT_SIZE, tr.on ? `fh${o.fh}` : undefined);
}
function replyCreate(s: FuseSession, req: Request, c: CreateOut): void {
  const b = s.scratch(ENTRY_OUT_SIZE + OPEN_OUT_SIZE);
  writeEntryOut(b, OUT_HEADER_SIZE, c.entry);
  writeOpenOut(b, OUT_HEADER_SIZE + ENTRY_OUT_SIZE, c.open);
  s.replyBuf(req, b, ENTRY_OUT_SIZE + OPEN_OUT_SIZE, tr.on ? `n${c.entry.nodeid} fh${c.open.fh}` : undefined);
}
function replyWritten(s: FuseSession, req: Request, w: WriteOut): void {
  const b = s.scratch(WRITE_OUT_SIZE);
  b.writeUInt32LE(w.size, OUT_HEADER_SIZE);
  b.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
  s.replyBuf(req, b, WRITE_OUT_SIZE);
}
function replyU64(s: FuseSession, req: Request, v: number, size: number): void {
  const b = s.scratch(size);
  b.fill(0, OUT_HEADER_SIZE, OUT_HEADER_SIZE + size);
  putU64(b, OUT_HEADER_SIZE, v);
  s.replyBuf(req, b, size);
}
/** getxattr/listxattr size protocol: size 0 asks for the length; too small a buffer is ERANGE. */
function replySized(s: FuseSession, req: Request, size: number, value: Buffer): void {
  if (size === 0) replyU64(s, req, value.length, GETXATTR_OUT_SIZE);
  else if (value.length > size) s.replyError(req, Errno.ERANGE);
  else s.replyData(req, value);
}

function traceRx(req: Request, buf: Buffer, n: number): void {
  const spec = opSpec(req.opcode);
  let detail = '';
  if (spec && spec.names > 0 && n > H + spec.inSize) {
    const end = buf.indexOf(0, H + spec.inSize);
    detail = ` "${buf.toString('utf8', H + spec.inSize, end < 0 || end > n ? n : end)}"`;
  }
  tr.log(`rx ${req.unique}: ${opName(req.opcode)} n${req.nodeid}${detail}`);
}

export function dispatch(s: FuseSession, buf: Buffer, n: number): void {
  const h = decodeInHeader(buf, 0);
  const req = new Request(h);
  const op = h.opcode;
  const spec = opSpec(op);
  s.count(op);
  if (tr.on) traceRx(req, buf, n);
  if (!spec) {
    s.replyError(req, Errno.ENOSYS);
    return;
  }
  const minBody = op === Opcode.INIT ? 16 : spec.inSize;
  if (n < H + minBody || h.len !== n) {
    log.error({ op: spec.name, bytes: n, len: h.len }, 'malformed FUSE request');
    if (spec.noReply) s.noReply(req);
    else s.replyError(req, Errno.EIO);
    return;
  }
  const fs = s.fs;
  const body = H + spec.inSize;

  switch (op) {
    case Opcode.INIT:
      negotiateInit(s, req, buf, n);
      return;
    case Opcode.DESTROY:
      replyEmpty(s, req);
      void s.end('DESTROY');
      return;
    case Opcode.FORGET:
      forget(s, fs, [{ nodeid: h.nodeid, nlookup: getU64(buf, H) }], false);
      s.noReply(req);
      return;
    case Opcode.BATCH_FORGET: {
      const count = buf.readUInt32LE(H);
      const items: Array<{ nodeid: number; nlookup: number }> = [];
      for (let i = 0, off = H + 8; i < count && off + 16 <= n; i++, off += 16) items.push({ nodeid: getU64(buf, off), nlookup: getU64(buf, off + 8) });
      forget(s, fs, items, true);
      s.noReply(req);
      return;
    }
    case Opcode.INTERRUPT: {
      const target = s.pending.get(getU64(buf, H));
      if (target) target.interrupt();
      s.noReply(req);
      return;
    }
    case Opcode.NOTIFY_REPLY:
      s.noReply(req);
      return;
  }
  dispatchOp(s, fs, req, op, buf, n, body);
}

// Field readers of the request body (offsets relative to the end of fuse_in_header).
function u32(buf: Buffer, off: number): number {
  return buf.readUInt32LE(H + off);
}
function u64(buf: Buffer, off: number): number {
  return getU64(buf, H + off);
}
function name(buf: Buffer, body: number, n: number): Buffer {
  return readName(buf, body, n)[0];
}

/** The operations with a RawFileSystem method: decode, call, encode (ENOSYS where it has none). */
function dispatchOp(s: FuseSession, fs: RawFileSystem, req: Request, op: number, buf: Buffer, n: number, body: number): void {
  switch (op) {
    case Opcode.LOOKUP:
      if (!fs.lookup) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.lookup, name(buf, body, n), replyEntry);
    case Opcode.GETATTR: {
      if (!fs.getattr) return s.replyError(req, Errno.ENOSYS);
      const fh = (u32(buf, 0) & 1) !== 0 ? u64(buf, 8) : undefined;
      return call(s, req, fs.getattr, { fh }, replyAttr);
    }
    case Opcode.SETATTR:
      if (!fs.setattr) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.setattr, decodeSetattrIn(buf, H), replyAttr);
    case Opcode.READLINK:
      if (!fs.readlink) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.readlink, undefined, (_s, _req, target: Buffer) => s.replyData(req, target));
    case Opcode.SYMLINK: {
      if (!fs.symlink) return s.replyError(req, Errno.ENOSYS);
      const [nm, next] = readName(buf, body, n);
      return call(s, req, fs.symlink, { name: nm, target: name(buf, next, n) }, replyEntry);
    }
    case Opcode.MKNOD:
      if (!fs.mknod) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.mknod, { mode: u32(buf, 0), rdev: u32(buf, 4), umask: u32(buf, 8), name: name(buf, body, n) }, replyEntry);
    case Opcode.MKDIR:
      if (!fs.mkdir) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.mkdir, { mode: u32(buf, 0), umask: u32(buf, 4), name: name(buf, body, n) }, replyEntry);
    case Opcode.UNLINK:
    case Opcode.RMDIR: {
      const f = op === Opcode.UNLINK ? fs.unlink : fs.rmdir;
      if (!f) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, f, { name: name(buf, body, n) }, replyEmpty);
    }
    case Opcode.RENAME:
    case Opcode.RENAME2: {
      if (!fs.rename) return s.replyError(req, Errno.ENOSYS);
      const [nm, next] = readName(buf, body, n);
      const r = { name: nm, newParent: u64(buf, 0), newName: name(buf, next, n), flags: op === Opcode.RENAME2 ? u32(buf, 8) : 0 };
      return call(s, req, fs.rename, r, replyEmpty);
    }
    case Opcode.LINK:
      if (!fs.link) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.link, { oldNodeid: u64(buf, 0), newName: name(buf, body, n) }, replyEntry);
    case Opcode.OPEN:
    case Opcode.OPENDIR: {
      const f = op === Opcode.OPEN ? fs.open : fs.opendir;
      if (!f) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, f, { flags: u32(buf, 0), openFlags: u32(buf, 4) }, replyOpen);
    }
    case Opcode.READ: {
      if (!fs.read) return s.replyError(req, Errno.ENOSYS);
      const r = { fh: u64(buf, 0), offset: u64(buf, 8), size: u32(buf, 16), readFlags: u32(buf, 20), lockOwner: u64(buf, 24), flags: u32(buf, 32) };
      return call(s, req, fs.read, r, replyRead);
    }
    case Opcode.WRITE: {
      if (!fs.write) return s.replyError(req, Errno.ENOSYS);
      const size = u32(buf, 16);
      const at = H + 40;
      if (at + size > n) return s.replyError(req, Errno.EIO);
      // Large payloads keep the read buffer (the loop swapped in a new one); small ones are copied.
      const data = size >= 64 * 1024 ? buf.subarray(at, at + size) : Buffer.from(buf.subarray(at, at + size));
      const r = { fh: u64(buf, 0), offset: u64(buf, 8), data, writeFlags: u32(buf, 20), lockOwner: u64(buf, 24), flags: u32(buf, 32) };
      return call(s, req, fs.write, r, replyWritten);
    }
    case Opcode.STATFS:
      if (!fs.statfs) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.statfs, undefined, replyStatfs);
    case Opcode.RELEASE:
    case Opcode.RELEASEDIR: {
      const f = op === Opcode.RELEASE ? fs.release : fs.releasedir;
      // No handler: nothing was opened that needs closing, so success is the truthful answer.
      if (!f) return replyEmpty(s, req);
      return call(s, req, f, { fh: u64(buf, 0), flags: u32(buf, 8), releaseFlags: u32(buf, 12), lockOwner: u64(buf, 16) }, replyEmpty);
    }
    case Opcode.FSYNC:
    case Opcode.FSYNCDIR: {
      const f = op === Opcode.FSYNC ? fs.fsync : fs.fsyncdir;
      if (!f) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, f, { fh: u64(buf, 0), datasync: (u32(buf, 8) & 1) !== 0 }, replyEmpty);
    }
    case Opcode.FLUSH:
      if (!fs.flush) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.flush, { fh: u64(buf, 0), lockOwner: u64(buf, 16) }, replyEmpty);
    case Opcode.SETXATTR: {
      if (!fs.setxattr) return s.replyError(req, Errno.ENOSYS);
      const size = u32(buf, 0);
      const [nm, next] = readName(buf, body, n);
      if (next + size > n) return s.replyError(req, Errno.EIO);
      const r = { name: nm.toString('utf8'), value: Buffer.from(buf.subarray(next, next + size)), flags: u32(buf, 4), setxattrFlags: 0 };
      return call(s, req, fs.setxattr, r, replyEmpty);
    }
    case Opcode.GETXATTR:
      if (!fs.getxattr) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.getxattr, { size: u32(buf, 0), name: name(buf, body, n).toString('utf8') }, (_s, _req, v: Buffer, r) => replySized(s, req, r.size, v));
    case Opcode.LISTXATTR: {
      if (!fs.listxattr) return s.replyError(req, Errno.ENOSYS);
      const size = u32(buf, 0);
      return call(s, req, fs.listxattr, undefined, (_s, _req, list: string[]) => {
        replySized(s, req, size, Buffer.concat(list.map((x) => Buffer.from(`${x}\0`, 'utf8'))));
      });
    }
    case Opcode.REMOVEXATTR:
      if (!fs.removexattr) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.removexattr, { name: name(buf, body, n).toString('utf8') }, replyEmpty);
    case Opcode.READDIR: {
      const readdir = fs.readdir;
      if (!readdir) return s.replyError(req, Errno.ENOSYS);
      const r = { fh: u64(buf, 0), offset: u64(buf, 8), size: u32(buf, 16) };
      const out = new DirentBuffer(r.size);
      return call(s, req, () => readdir.call(fs, req, r, out), undefined, () => s.replyBuf(req, out.buf, out.bytes.length - OUT_HEADER_SIZE));
    }
    case Opcode.READDIRPLUS: {
      const readdirplus = fs.readdirplus;
      if (!readdirplus) return s.replyError(req, Errno.ENOSYS);
      const r = { fh: u64(buf, 0), offset: u64(buf, 8), size: u32(buf, 16) };
      const out = new DirentPlusBuffer(r.size);
      return call(s, req, () => readdirplus.call(fs, req, r, out), undefined, () => s.replyBuf(req, out.buf, out.bytes.length - OUT_HEADER_SIZE));
    }
    case Opcode.ACCESS:
      if (!fs.access) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.access, { mask: u32(buf, 0) }, replyEmpty);
    case Opcode.CREATE:
      if (!fs.create) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.create, { flags: u32(buf, 0), mode: u32(buf, 4), umask: u32(buf, 8), openFlags: u32(buf, 12), name: name(buf, body, n) }, replyCreate);
    case Opcode.FALLOCATE:
      if (!fs.fallocate) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.fallocate, { fh: u64(buf, 0), offset: u64(buf, 8), length: u64(buf, 16), mode: u32(buf, 24) }, replyEmpty);
    case Opcode.LSEEK:
      if (!fs.lseek) return s.replyError(req, Errno.ENOSYS);
      return call(s, req, fs.lseek, { fh: u64(buf, 0), offset: getI64(buf, H + 8), whence: u32(buf, 16) }, replyLseek);
    case Opcode.COPY_FILE_RANGE: {
      if (!fs.copyFileRange) return s.replyError(req, Errno.ENOSYS);
      const r = { fhIn: u64(buf, 0), offIn: u64(buf, 8), nodeidOut: u64(buf, 16), fhOut: u64(buf, 24), offOut: u64(buf, 32), len: u64(buf, 40), flags: u64(buf, 48) };
      return call(s, req, fs.copyFileRange, r, replyWritten);
    }
    default:
      return s.replyError(req, Errno.ENOSYS);
  }
}

function replyRead(s: FuseSession, req: Request, data: Buffer, r: { size: number }): void {
  s.replyData(req, data.length > r.size ? data.subarray(0, r.size) : data);
}
function replyStatfs(s: FuseSession, req: Request, st: StatfsOut): void {
  const b = s.scratch(KSTATFS_SIZE);
  writeStatfs(b, OUT_HEADER_SIZE, st);
  s.replyBuf(req, b, KSTATFS_SIZE);
}
function replyLseek(s: FuseSession, req: Request, o: LseekOut): void {
  replyU64(s, req, o.offset, LSEEK_OUT_SIZE);
}

/** FORGET/BATCH_FORGET: no reply; a throwing forget is a lookup-count bug, logged loudly. */
function forget(s: FuseSession, fs: RawFileSystem, items: Array<{ nodeid: number; nlookup: number }>, batch: boolean): void {
  try {
    if (batch && fs.batchForget) fs.batchForget(items);
    else if (fs.forget) for (const it of items) fs.forget(it.nodeid, it.nlookup);
  } catch (err) {
    s.bugs++;
    log.error({ err }, 'forget failed: lookup counts are out of step with the kernel');
    s.emit('bug', err);
  }
}
