// Request dispatch: decodes each request body (include/uapi/linux/fuse.h layouts), calls the
// RawFileSystem method, encodes its reply. ENOSYS for what the file system does not implement
// and EIO for what it throws are decided here, once, never per handler.
import { Errno, FsError } from '../../common/errno';
import { moduleLogger, tracer } from '../../common/logger';
import { DirentBuffer, DirentPlusBuffer } from './dirent';
import { negotiateInit } from './init';
import { Opcode, opName, opSpec } from './opcodes';
import type { EntryOut, Reply, RawFileSystem } from './raw-fs';
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

/** Runs a handler; a sync result replies at once, a Promise registers the request as pending. */
function call<T>(s: FuseSession, req: Request, f: () => Reply<T>, ok: (v: T) => void): void {
  let r: Reply<T>;
  try {
    r = f();
  } catch (err) {
    s.replyThrown(req, err);
    return;
  }
  // Duck-typed: a promise from another realm (Node core APIs under jest) is not `instanceof Promise`.
  if (typeof (r as PromiseLike<unknown> | undefined)?.then === 'function') {
    s.pending.set(req.unique, req);
    (r as PromiseLike<T | FsError>).then((v) => settle(s, req, v, ok), (err: unknown) => s.replyThrown(req, err));
    return;
  }
  settle(s, req, r as T | FsError, ok);
}

function settle<T>(s: FuseSession, req: Request, v: T | FsError, ok: (v: T) => void): void {
  if (s.isClosed) return;
  if (v instanceof FsError) {
    s.replyThrown(req, v);
    return;
  }
  try {
    ok(v);
  } catch (err) {
    s.replyThrown(req, err);
  }
}

function replyEntry(s: FuseSession, req: Request) {
  return (e: EntryOut) => {
    const b = s.scratch(ENTRY_OUT_SIZE);
    writeEntryOut(b, OUT_HEADER_SIZE, e);
    s.replyBuf(req, b, ENTRY_OUT_SIZE, tr.on ? `n${e.nodeid}` : undefined);
  };
}
function replyEmpty(s: FuseSession, req: Request) {
  return () => s.replyBuf(req, s.scratch(0), 0);
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
  const name = (): Buffer => readName(buf, H + spec.inSize, n)[0];
  const names = (): [Buffer, Buffer] => {
    const [a, next] = readName(buf, H + spec.inSize, n);
    return [a, readName(buf, next, n)[0]];
  };
  const u32 = (off: number): number => buf.readUInt32LE(H + off);
  const u64 = (off: number): number => getU64(buf, H + off);

  switch (op) {
    case Opcode.INIT:
      negotiateInit(s, req, buf, n);
      return;
    case Opcode.DESTROY:
      replyEmpty(s, req)();
      void s.end('DESTROY');
      return;
    case Opcode.FORGET:
      forget(s, fs, [{ nodeid: h.nodeid, nlookup: u64(0) }], false);
      s.noReply(req);
      return;
    case Opcode.BATCH_FORGET: {
      const count = u32(0);
      const items: Array<{ nodeid: number; nlookup: number }> = [];
      for (let i = 0, off = H + 8; i < count && off + 16 <= n; i++, off += 16) items.push({ nodeid: getU64(buf, off), nlookup: getU64(buf, off + 8) });
      forget(s, fs, items, true);
      s.noReply(req);
      return;
    }
    case Opcode.INTERRUPT: {
      const target = s.pending.get(u64(0));
      if (target) target.interrupt();
      s.noReply(req);
      return;
    }
    case Opcode.NOTIFY_REPLY:
      s.noReply(req);
      return;
  }

  const nosys = (): void => s.replyError(req, Errno.ENOSYS);
  switch (op) {
    case Opcode.LOOKUP:
      if (!fs.lookup) return nosys();
      return call(s, req, () => fs.lookup!(req, name()), replyEntry(s, req));
    case Opcode.GETATTR: {
      if (!fs.getattr) return nosys();
      const fh = (u32(0) & 1) !== 0 ? u64(8) : undefined;
      return call(s, req, () => fs.getattr!(req, { fh }), (a) => {
        const b = s.scratch(ATTR_OUT_SIZE);
        writeAttrOut(b, OUT_HEADER_SIZE, a);
        s.replyBuf(req, b, ATTR_OUT_SIZE);
      });
    }
    case Opcode.SETATTR: {
      if (!fs.setattr) return nosys();
      const r = decodeSetattrIn(buf, H);
      return call(s, req, () => fs.setattr!(req, r), (a) => {
        const b = s.scratch(ATTR_OUT_SIZE);
        writeAttrOut(b, OUT_HEADER_SIZE, a);
        s.replyBuf(req, b, ATTR_OUT_SIZE);
      });
    }
    case Opcode.READLINK:
      if (!fs.readlink) return nosys();
      return call(s, req, () => fs.readlink!(req), (target) => s.replyData(req, target));
    case Opcode.SYMLINK: {
      if (!fs.symlink) return nosys();
      const [nm, target] = names();
      return call(s, req, () => fs.symlink!(req, { name: nm, target }), replyEntry(s, req));
    }
    case Opcode.MKNOD: {
      if (!fs.mknod) return nosys();
      const r = { mode: u32(0), rdev: u32(4), umask: u32(8), name: name() };
      return call(s, req, () => fs.mknod!(req, r), replyEntry(s, req));
    }
    case Opcode.MKDIR: {
      if (!fs.mkdir) return nosys();
      const r = { mode: u32(0), umask: u32(4), name: name() };
      return call(s, req, () => fs.mkdir!(req, r), replyEntry(s, req));
    }
    case Opcode.UNLINK:
    case Opcode.RMDIR: {
      const f = op === Opcode.UNLINK ? fs.unlink : fs.rmdir;
      if (!f) return nosys();
      const r = { name: name() };
      return call(s, req, () => f.call(fs, req, r), replyEmpty(s, req));
    }
    case Opcode.RENAME:
    case Opcode.RENAME2: {
      if (!fs.rename) return nosys();
      const [nm, newName] = names();
      const r = { name: nm, newParent: u64(0), newName, flags: op === Opcode.RENAME2 ? u32(8) : 0 };
      return call(s, req, () => fs.rename!(req, r), replyEmpty(s, req));
    }
    case Opcode.LINK: {
      if (!fs.link) return nosys();
      const r = { oldNodeid: u64(0), newName: name() };
      return call(s, req, () => fs.link!(req, r), replyEntry(s, req));
    }
    case Opcode.OPEN:
    case Opcode.OPENDIR: {
      const f = op === Opcode.OPEN ? fs.open : fs.opendir;
      if (!f) return nosys();
      const r = { flags: u32(0), openFlags: u32(4) };
      return call(s, req, () => f.call(fs, req, r), (o) => {
        const b = s.scratch(OPEN_OUT_SIZE);
        writeOpenOut(b, OUT_HEADER_SIZE, o);
        s.replyBuf(req, b, OPEN_OUT_SIZE, tr.on ? `fh${o.fh}` : undefined);
      });
    }
    case Opcode.READ: {
      if (!fs.read) return nosys();
      const r = { fh: u64(0), offset: u64(8), size: u32(16), readFlags: u32(20), lockOwner: u64(24), flags: u32(32) };
      return call(s, req, () => fs.read!(req, r), (data) => s.replyData(req, data.length > r.size ? data.subarray(0, r.size) : data));
    }
    case Opcode.WRITE: {
      if (!fs.write) return nosys();
      const size = u32(16);
      const at = H + 40;
      if (at + size > n) return s.replyError(req, Errno.EIO);
      // Large payloads keep the read buffer (the loop swapped in a new one); small ones are copied.
      const data = size >= 64 * 1024 ? buf.subarray(at, at + size) : Buffer.from(buf.subarray(at, at + size));
      const r = { fh: u64(0), offset: u64(8), data, writeFlags: u32(20), lockOwner: u64(24), flags: u32(32) };
      return call(s, req, () => fs.write!(req, r), (w) => {
        const b = s.scratch(WRITE_OUT_SIZE);
        b.writeUInt32LE(w.size, OUT_HEADER_SIZE);
        b.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
        s.replyBuf(req, b, WRITE_OUT_SIZE);
      });
    }
    case Opcode.STATFS:
      if (!fs.statfs) return nosys();
      return call(s, req, () => fs.statfs!(req), (st) => {
        const b = s.scratch(KSTATFS_SIZE);
        writeStatfs(b, OUT_HEADER_SIZE, st);
        s.replyBuf(req, b, KSTATFS_SIZE);
      });
    case Opcode.RELEASE:
    case Opcode.RELEASEDIR: {
      const f = op === Opcode.RELEASE ? fs.release : fs.releasedir;
      // No handler: nothing was opened that needs closing, so success is the truthful answer.
      if (!f) return replyEmpty(s, req)();
      const r = { fh: u64(0), flags: u32(8), releaseFlags: u32(12), lockOwner: u64(16) };
      return call(s, req, () => f.call(fs, req, r), replyEmpty(s, req));
    }
    case Opcode.FSYNC:
    case Opcode.FSYNCDIR: {
      const f = op === Opcode.FSYNC ? fs.fsync : fs.fsyncdir;
      if (!f) return nosys();
      const r = { fh: u64(0), datasync: (u32(8) & 1) !== 0 };
      return call(s, req, () => f.call(fs, req, r), replyEmpty(s, req));
    }
    case Opcode.FLUSH: {
      if (!fs.flush) return nosys();
      const r = { fh: u64(0), lockOwner: u64(16) };
      return call(s, req, () => fs.flush!(req, r), replyEmpty(s, req));
    }
    case Opcode.SETXATTR: {
      if (!fs.setxattr) return nosys();
      const size = u32(0);
      const [nm, next] = readName(buf, H + spec.inSize, n);
      if (next + size > n) return s.replyError(req, Errno.EIO);
      const r = { name: nm.toString('utf8'), value: Buffer.from(buf.subarray(next, next + size)), flags: u32(4), setxattrFlags: 0 };
      return call(s, req, () => fs.setxattr!(req, r), replyEmpty(s, req));
    }
    case Opcode.GETXATTR: {
      if (!fs.getxattr) return nosys();
      const r = { size: u32(0), name: name().toString('utf8') };
      return call(s, req, () => fs.getxattr!(req, r), (v) => replySized(s, req, r.size, v));
    }
    case Opcode.LISTXATTR: {
      if (!fs.listxattr) return nosys();
      const size = u32(0);
      return call(s, req, () => fs.listxattr!(req), (list) => {
        replySized(s, req, size, Buffer.concat(list.map((x) => Buffer.from(`${x}\0`, 'utf8'))));
      });
    }
    case Opcode.REMOVEXATTR: {
      if (!fs.removexattr) return nosys();
      const r = { name: name().toString('utf8') };
      return call(s, req, () => fs.removexattr!(req, r), replyEmpty(s, req));
    }
    case Opcode.READDIR: {
      if (!fs.readdir) return nosys();
      const r = { fh: u64(0), offset: u64(8), size: u32(16) };
      const out = new DirentBuffer(r.size);
      return call(s, req, () => fs.readdir!(req, r, out), () => s.replyBuf(req, out.buf, out.bytes.length - OUT_HEADER_SIZE));
    }
    case Opcode.READDIRPLUS: {
      if (!fs.readdirplus) return nosys();
      const r = { fh: u64(0), offset: u64(8), size: u32(16) };
      const out = new DirentPlusBuffer(r.size);
      return call(s, req, () => fs.readdirplus!(req, r, out), () => s.replyBuf(req, out.buf, out.bytes.length - OUT_HEADER_SIZE));
    }
    case Opcode.ACCESS: {
      if (!fs.access) return nosys();
      const r = { mask: u32(0) };
      return call(s, req, () => fs.access!(req, r), replyEmpty(s, req));
    }
    case Opcode.CREATE: {
      if (!fs.create) return nosys();
      const r = { flags: u32(0), mode: u32(4), umask: u32(8), openFlags: u32(12), name: name() };
      return call(s, req, () => fs.create!(req, r), (c) => {
        const b = s.scratch(ENTRY_OUT_SIZE + OPEN_OUT_SIZE);
        writeEntryOut(b, OUT_HEADER_SIZE, c.entry);
        writeOpenOut(b, OUT_HEADER_SIZE + ENTRY_OUT_SIZE, c.open);
        s.replyBuf(req, b, ENTRY_OUT_SIZE + OPEN_OUT_SIZE, tr.on ? `n${c.entry.nodeid} fh${c.open.fh}` : undefined);
      });
    }
    case Opcode.FALLOCATE: {
      if (!fs.fallocate) return nosys();
      const r = { fh: u64(0), offset: u64(8), length: u64(16), mode: u32(24) };
      return call(s, req, () => fs.fallocate!(req, r), replyEmpty(s, req));
    }
    case Opcode.LSEEK: {
      if (!fs.lseek) return nosys();
      const r = { fh: u64(0), offset: getI64(buf, H + 8), whence: u32(16) };
      return call(s, req, () => fs.lseek!(req, r), (o) => replyU64(s, req, o.offset, LSEEK_OUT_SIZE));
    }
    case Opcode.COPY_FILE_RANGE: {
      if (!fs.copyFileRange) return nosys();
      const r = { fhIn: u64(0), offIn: u64(8), nodeidOut: u64(16), fhOut: u64(24), offOut: u64(32), len: u64(40), flags: u64(48) };
      return call(s, req, () => fs.copyFileRange!(req, r), (w) => {
        const b = s.scratch(WRITE_OUT_SIZE);
        b.writeUInt32LE(w.size, OUT_HEADER_SIZE);
        b.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
        s.replyBuf(req, b, WRITE_OUT_SIZE);
      });
    }
    default:
      return nosys();
  }
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
