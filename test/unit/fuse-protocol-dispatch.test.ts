// Dispatch without a kernel: crafted requests go into dispatch(), replies are written to a temp
// file standing in for /dev/fuse and decoded back. Covers the one-place rules: ENOSYS, EIO for
// malformed requests and for thrown errors, FsError errnos, no reply for FORGET/INTERRUPT.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno, fsError } from '../../src/common/errno';
import { dispatch } from '../../src/fuse/protocol/dispatch';
import { Opcode } from '../../src/fuse/protocol/opcodes';
import { errnoReply, type AttrOut, type RawFileSystem, type RequestContext } from '../../src/fuse/protocol/raw-fs';
import { FuseSession } from '../../src/fuse/protocol/session';
import { IN_HEADER_SIZE, OUT_HEADER_SIZE, getU64, readAttr } from '../../src/fuse/protocol/wire';

const T = { sec: 1, nsec: 0 };
const ATTR = { ino: 2, size: 10, atime: T, mtime: T, ctime: T, mode: 0o100644, nlink: 1, uid: 0, gid: 0 };

interface Reply { len: number; error: number; unique: number; body: Buffer }

class Harness {
  readonly file: string;
  readonly fd: number;
  readonly session: FuseSession;
  private readPos = 0;
  private unique = 100;

  constructor(readonly rawFs: RawFileSystem) {
    this.file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-dispatch-')), 'dev');
    this.fd = fs.openSync(this.file, 'w+');
    this.session = new FuseSession(rawFs, { fd: this.fd, mountpoint: path.join(this.file, 'none'), options: { maxWrite: 1 << 20, maxReadahead: 1 << 20, passthrough: false } });
  }

  send(opcode: number, nodeid: number, body: Buffer = Buffer.alloc(0), opts: { len?: number } = {}): number {
    const u = (this.unique += 2);
    const b = Buffer.alloc(IN_HEADER_SIZE + body.length);
    b.writeUInt32LE(opts.len ?? b.length, 0);
    b.writeUInt32LE(opcode, 4);
    b.writeBigUInt64LE(BigInt(u), 8);
    b.writeBigUInt64LE(BigInt(nodeid), 16);
    b.writeUInt32LE(1000, 24);
    b.writeUInt32LE(100, 28);
    b.writeUInt32LE(4242, 32);
    body.copy(b, IN_HEADER_SIZE);
    this.session.inflight++;
    dispatch(this.session, b, b.length);
    return u;
  }

  replies(): Reply[] {
    const all = fs.readFileSync(this.file).subarray(this.readPos);
    const out: Reply[] = [];
    for (let p = 0; p + OUT_HEADER_SIZE <= all.length;) {
      const len = all.readUInt32LE(p);
      out.push({ len, error: all.readInt32LE(p + 4), unique: getU64(all, p + 8), body: Buffer.from(all.subarray(p + OUT_HEADER_SIZE, p + len)) });
      p += len;
      this.readPos += len;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.end('test over');
    fs.rmSync(path.dirname(this.file), { recursive: true, force: true });
  }
}

const name = (s: string): Buffer => Buffer.from(`${s}\0`);

describe('dispatch', () => {
  let h: Harness;
  let forgets: Array<[number, number]>;
  let resolveSlow: ((a: AttrOut) => void) | undefined;
  let sawSignal: AbortSignal | undefined;

  beforeEach(() => {
    forgets = [];
    h = new Harness({
      lookup: (_ctx, n) => (n.toString() === 'x' ? { nodeid: 2, generation: 1, entryValid: 1, attrValid: 1, attr: ATTR } : errnoReply(Errno.ENOENT)),
      forget: (nodeid, n) => {
        if (n > 5) throw new Error('over-forget');
        forgets.push([nodeid, n]);
      },
      getattr: (ctx: RequestContext) => {
        if (ctx.nodeid === 66) throw new Error('boom');
        if (ctx.nodeid === 77) throw fsError('EACCES');
        if (ctx.nodeid === 88) {
          sawSignal = ctx.signal;
          return new Promise<AttrOut>((resolve) => (resolveSlow = resolve));
        }
        return { attrValid: 0, attr: { ...ATTR, ino: ctx.nodeid, uid: ctx.uid } };
      },
      getxattr: () => Buffer.from('value'),
      read: () => Buffer.alloc(100, 1),
    });
  });
  afterEach(() => h.close());

  it('answers an unknown opcode and an unimplemented one with ENOSYS', () => {
    const a = h.send(9999, 1);
    const b = h.send(Opcode.MKDIR, 1, Buffer.concat([Buffer.alloc(8), name('d')]));
    expect(h.replies().map((r) => [r.unique, r.error])).toEqual([[a, -Errno.ENOSYS], [b, -Errno.ENOSYS]]);
    expect(h.session.opCounts()).toMatchObject({ MKDIR: 1 });
  });

  it('answers malformed requests (short body, wrong length) with EIO', () => {
    h.send(Opcode.GETATTR, 1, Buffer.alloc(4));
    h.send(Opcode.GETATTR, 1, Buffer.alloc(16), { len: 999 });
    expect(h.replies().map((r) => r.error)).toEqual([-Errno.EIO, -Errno.EIO]);
  });

  it('encodes entries, returned FsErrors and thrown FsErrors; a plain throw is EIO', () => {
    h.send(Opcode.LOOKUP, 1, name('x'));
    h.send(Opcode.LOOKUP, 1, name('y'));
    h.send(Opcode.GETATTR, 77, Buffer.alloc(16));
    h.send(Opcode.GETATTR, 66, Buffer.alloc(16));
    const [ok, enoent, eacces, eio] = h.replies();
    expect([ok.error, ok.len, getU64(ok.body, 0), getU64(ok.body, 8)]).toEqual([0, OUT_HEADER_SIZE + 128, 2, 1]);
    expect(readAttr(ok.body, 40).ino).toBe(2);
    expect([enoent.error, eacces.error, eio.error]).toEqual([-Errno.ENOENT, -Errno.EACCES, -Errno.EIO]);
    expect(h.session.inflight).toBe(0);
  });

  it('maps a Node system error thrown by a handler to its errno', async () => {
    (h.rawFs as { readlink?: () => unknown }).readlink = () => fs.promises.readlink('/nonexistent/kurve'); // a Node-core promise: another realm under jest
    h.send(Opcode.READLINK, 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(h.replies().map((r) => r.error)).toEqual([-Errno.ENOENT]);
  });

  it('passes the caller in the context', () => {
    h.send(Opcode.GETATTR, 5, Buffer.alloc(16));
    const [r] = h.replies();
    expect(readAttr(r.body, 16)).toMatchObject({ ino: 5, uid: 1000 });
  });

  it('never replies to FORGET, BATCH_FORGET or INTERRUPT; a rejected forget counts as a bug', () => {
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(3n);
    h.send(Opcode.FORGET, 9, one);
    const batch = Buffer.alloc(8 + 32);
    batch.writeUInt32LE(2, 0);
    batch.writeBigUInt64LE(10n, 8); batch.writeBigUInt64LE(1n, 16);
    batch.writeBigUInt64LE(11n, 24); batch.writeBigUInt64LE(2n, 32);
    h.send(Opcode.BATCH_FORGET, 0, batch);
    h.send(Opcode.INTERRUPT, 0, Buffer.alloc(8));
    expect(h.replies()).toEqual([]);
    expect(forgets).toEqual([[9, 3], [10, 1], [11, 2]]);
    const bad = Buffer.alloc(8);
    bad.writeBigUInt64LE(6n);
    h.send(Opcode.FORGET, 9, bad);
    expect(h.session.bugs).toBe(1);
  });

  it('replies to async handlers when they settle and aborts them on INTERRUPT', async () => {
    const u = h.send(Opcode.GETATTR, 88, Buffer.alloc(16));
    expect(h.replies()).toEqual([]);
    expect(h.session.pending.has(u)).toBe(true);
    const intr = Buffer.alloc(8);
    intr.writeBigUInt64LE(BigInt(u));
    h.send(Opcode.INTERRUPT, 0, intr);
    expect(sawSignal?.aborted).toBe(true);
    resolveSlow!({ attrValid: 0, attr: ATTR });
    await new Promise((r) => setImmediate(r));
    const [r] = h.replies();
    expect([r.unique, r.error]).toEqual([u, 0]);
    expect(h.session.pending.size).toBe(0);
  });

  it('answers getxattr size probes and ERANGE', () => {
    const req = (size: number): Buffer => {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(size, 0);
      return Buffer.concat([b, name('user.a')]);
    };
    h.send(Opcode.GETXATTR, 1, req(0));
    h.send(Opcode.GETXATTR, 1, req(3));
    h.send(Opcode.GETXATTR, 1, req(64));
    const [probe, small, full] = h.replies();
    expect([probe.error, probe.body.readUInt32LE(0)]).toEqual([0, 5]);
    expect(small.error).toBe(-Errno.ERANGE);
    expect(full.body.toString()).toBe('value');
  });

  it('answers EIO when a handler returns the wrong type of data', () => {
    (h.rawFs as { readlink?: () => unknown }).readlink = () => 'not a buffer';
    h.send(Opcode.READLINK, 2);
    expect(h.replies().map((r) => r.error)).toEqual([-Errno.EIO]);
    expect(h.session.inflight).toBe(0);
  });

  it('never sends more READ data than asked for', () => {
    const b = Buffer.alloc(40);
    b.writeUInt32LE(10, 16); // size
    h.send(Opcode.READ, 2, b);
    expect(h.replies()[0].body.length).toBe(10);
  });

  it('writes nothing after the session ended', async () => {
    const u = h.send(Opcode.GETATTR, 88, Buffer.alloc(16));
    await h.session.end('test');
    resolveSlow!({ attrValid: 0, attr: ATTR });
    await new Promise((r) => setImmediate(r));
    expect(h.replies().filter((r) => r.unique === u)).toEqual([]);
  });
});
