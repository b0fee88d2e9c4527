// Namespace: the metaserver's MetaService over any KvEngine. Read ops are served straight from
// the engine; mutating ops live in ns-*.ts and orphans.ts as retried transactions (core.ts).
import type { DataService } from '../datastore/api';
import { expectedFsError, fsError } from '../common/errno';
import { gauge } from '../common/metrics';
import {
  Attr, Caller, CommitDataRequest, CreateFsOptions, MetaAdmin, DataMap, DirEntry, Ino, MetaService, NAME_MAX, ReadDirResult,
  ROOT_INO, SetAttrRequest, StatFs, SubscribeHandlers, Subscription, UnlinkResult,
} from './api';
import { Core } from './core';
import { KvEngine, prefixEnd } from './engine';
import { meteredEngine } from './engine-metrics';
import { ChangeFeed, InProcessFeed } from './feed';
import { GcQueue } from './gc';
import {
  decodeDentry, decodeFs, decodeInode, decodeReaddirEntry, encodeFs, encodeInode, FIRST_COOKIE, FsRecord, inodeMode, isDir,
  nowTs, readU64Value, S_IFDIR, toAttr, u64Value,
} from './inode';
import {
  ALLOC_INO, ALLOC_VERSION, allFsPrefix, allocKey, checkName, dentryKey, fsKey, inodeKey, readdirKey, readdirPrefix, T,
} from './keys';
import * as attrs from './ns-attrs';
import * as data from './ns-data';
import * as entries from './ns-entries';
import { rename } from './ns-rename';
import * as orphans from './orphans';
import { Repairer, RepairOptions, RepairSummary } from './repair';
import { StraySweeper, DEFAULT_STRAY_GRACE_MS } from './sweep';
import { Allocator, ALLOCATOR_VERSION_BLOCK_MS } from './txn';

export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;
export const MAX_READDIR = 10_000;

const counts = gauge({
  name: 'kurve_metaserver_keys',
  help: 'Namespace records in the store, by kind (inodes, dentries, orphans, gc), refreshed periodically',
  labelNames: ['kind'] as const,
});

export interface NamespaceOptions {
  /** Where replaced chunks and purged inodes are deleted; without it they wait in the GC queue. */
  readonly datastore?: DataService;
  /** Grace period before a replaced chunk object is deleted (default 30 s). */
  readonly gcGraceMs?: number;
  /** How long an unlinked regular file nobody held waits before its purge (default 10 s; 0 = at once). */
  readonly unlinkGraceMs?: number;
  /**
   * Datastore objects no chunk map references are deleted once older than this (default 24 h;
   * needs a datastore that can list; runs with the GC loop). See sweep.ts.
   */
  readonly strayGraceMs?: number;
  readonly sweepIntervalMs?: number;
  /** Background re-replication of replicated file systems (needs the datastore list of the MDS). See repair.ts. */
  readonly repair?: RepairOptions;
  readonly gcIntervalMs?: number;
  /** Start the background GC loop (default true). */
  readonly runGc?: boolean;
  /** A feed driven from elsewhere (an etcd watch); default: the in-process feed. */
  readonly feed?: ChangeFeed;
  readonly feedRingSize?: number;
  /** Write each txn's events under the 'E' keys (for a watch-driven feed). */
  readonly persistEvents?: boolean;
}

export type { CreateFsOptions };

export class Namespace implements MetaService, MetaAdmin {
  private countTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly engine: KvEngine, readonly core: Core, readonly feed: ChangeFeed, private readonly opts: NamespaceOptions,
    private readonly sweeper?: StraySweeper,
    private readonly repairer?: Repairer,
  ) {}

  static async open(store: KvEngine, opts: NamespaceOptions = {}): Promise<Namespace> {
    const engine = meteredEngine(store);
    const feed = opts.feed ?? new InProcessFeed({ startRevision: await engine.revision(), ringSize: opts.feedRingSize });
    const gc = new GcQueue(engine, { datastore: opts.datastore, graceMs: opts.gcGraceMs, intervalMs: opts.gcIntervalMs, unlinkGraceMs: opts.unlinkGraceMs });
    const strayGraceMs = opts.strayGraceMs ?? DEFAULT_STRAY_GRACE_MS;
    const allocator = new Allocator(engine, undefined, Math.min(ALLOCATOR_VERSION_BLOCK_MS, Math.floor(strayGraceMs / 4)));
    const core = new Core(engine, feed, allocator, gc, { persistEvents: opts.persistEvents });
    gc.settleUnlinked = (fsId, ino) => orphans.settleUnlinked(core, fsId, ino);
    const sweeper = opts.datastore ? new StraySweeper(engine, gc, opts.datastore, { graceMs: strayGraceMs, intervalMs: opts.sweepIntervalMs }) : undefined;
    const repairer = opts.datastore && opts.repair ? new Repairer(engine, gc, opts.repair) : undefined;
    const ns = new Namespace(engine, core, feed, opts, sweeper, repairer);
    if (opts.runGc ?? true) {
      gc.start();
      sweeper?.start();
      repairer?.start();
    }
    if (engine.count) {
      ns.countTimer = setInterval(() => ns.refreshCounts().catch(() => undefined), 15_000);
      ns.countTimer.unref();
      await ns.refreshCounts();
    }
    return ns;
  }

  private async refreshCounts(): Promise<void> {
    const count = this.engine.count!.bind(this.engine);
    for (const [kind, tag] of [['inodes', T.INODE], ['dentries', T.DENTRY], ['orphans', T.ORPHAN], ['gc', T.GC]] as const) {
      counts.labels(kind).set(await count({ prefix: Buffer.from([tag]) }));
    }
  }

  /** Creates a file system and its root directory. Idempotent for the same chunk size. */
  async createFs(fsId: number, opts: CreateFsOptions = {}): Promise<boolean> {
    const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isInteger(fsId) || fsId < 0 || fsId > 0xffffffff) throw fsError('EINVAL', `bad file system id ${fsId}`);
    if (!Number.isInteger(chunkSize) || chunkSize < 4096 || chunkSize > 64 * 1024 * 1024) {
      throw fsError('EINVAL', `chunk size ${chunkSize} is outside 4 KiB..64 MiB`);
    }
    const existing = await this.engine.get(fsKey(fsId));
    if (existing) {
      const rec = decodeFs(existing.value);
      if (rec.chunkSize !== chunkSize) throw fsError('EEXIST', `file system ${fsId} exists with chunk size ${rec.chunkSize}`);
      return false;
    }
    const now = nowTs();
    const root = encodeInode({
      ino: ROOT_INO, generation: 1, mode: S_IFDIR | ((opts.rootMode ?? 0o755) & 0o7777), nlink: 2, uid: opts.uid ?? 0,
      gid: opts.gid ?? 0, rdev: 0, size: 0, atime: now, mtime: now, ctime: now, dataVersion: 0,
      nextCookie: FIRST_COOKIE, parent: ROOT_INO,
    });
    const rec: FsRecord = { fsId, chunkSize, createdMs: Date.now() };
    const res = await this.engine.txn({
      compares: [{ key: fsKey(fsId), modRevision: 0 }],
      puts: [
        { key: fsKey(fsId), value: encodeFs(rec) },
        { key: inodeKey(fsId, ROOT_INO), value: root },
        { key: allocKey(fsId, ALLOC_INO), value: u64Value(ROOT_INO + 1) },
        { key: allocKey(fsId, ALLOC_VERSION), value: u64Value(1) },
      ],
    });
    if (!res.succeeded) return this.createFs(fsId, opts); // raced with another creator: re-check
    return true;
  }

  async listFs(): Promise<FsRecord[]> {
    return (await this.engine.range({ prefix: allFsPrefix() })).map((e) => decodeFs(e.value));
  }

  async statfs(fsId: number): Promise<StatFs> {
    await this.core.fs(fsId);
    const bsize = 4096;
    let blocks = 2 ** 40 / bsize;
    let bfree = blocks;
    if (this.opts.datastore) {
      const s = await this.opts.datastore.stats();
      blocks = Math.floor(s.capacityBytes / bsize);
      bfree = Math.floor(s.freeBytes / bsize);
    }
    const hw = await this.engine.get(allocKey(fsId, ALLOC_INO));
    const files = 2 ** 32;
    const used = hw ? readU64Value(hw.value) : 0;
    return { blocks, bfree, bavail: bfree, files, ffree: Math.max(0, files - used), bsize, namelen: NAME_MAX, frsize: bsize };
  }

  private async attrOf(fsId: number, ino: Ino): Promise<Attr> {
    const raw = await this.engine.get(inodeKey(fsId, ino));
    if (!raw) throw fsError('ENOENT', `inode ${ino} does not exist`);
    return toAttr(decodeInode(ino, raw.value));
  }

  async lookup(fsId: number, parent: Ino, name: Buffer): Promise<Attr> {
    const attr = await this.lookupOptional(fsId, parent, name);
    if (!attr) throw expectedFsError('ENOENT', `'${name.toString()}' does not exist in directory ${parent}`);
    return attr;
  }

  /**
   * lookup() that answers a missing name with undefined instead of ENOENT: the in-process client's
   * negative lookups (one per file create) then throw nothing. A missing or non-directory parent
   * still throws.
   */
  async lookupOptional(fsId: number, parent: Ino, name: Buffer): Promise<Attr | undefined> {
    checkName(name);
    return this.core.measure('lookup', async () => {
      await this.core.fs(fsId);
      const d = await this.engine.get(dentryKey(fsId, parent, name));
      if (!d) {
        const p = await this.engine.get(inodeKey(fsId, parent));
        if (!p) throw fsError('ENOENT', `parent directory ${parent} does not exist`);
        if (!isDir(inodeMode(parent, p.value))) throw fsError('ENOTDIR', `parent ${parent} is not a directory`);
        return undefined;
      }
      return this.attrOf(fsId, decodeDentry(d.value).ino);
    }, 'ENOENT');
  }

  async getattr(fsId: number, ino: Ino): Promise<Attr> {
    return this.core.measure('getattr', async () => {
      await this.core.fs(fsId);
      return this.attrOf(fsId, ino);
    });
  }

  async setattr(fsId: number, ino: Ino, req: SetAttrRequest, caller: Caller): Promise<Attr> {
    return attrs.setattr(this.core, fsId, ino, req, caller);
  }
  async mknod(fsId: number, parent: Ino, name: Buffer, mode: number, rdev: number, caller: Caller): Promise<Attr> {
    return entries.mknod(this.core, fsId, parent, name, mode, rdev, caller);
  }
  async mkdir(fsId: number, parent: Ino, name: Buffer, mode: number, caller: Caller): Promise<Attr> {
    return entries.mkdir(this.core, fsId, parent, name, mode, caller);
  }
  async symlink(fsId: number, parent: Ino, name: Buffer, target: Buffer, caller: Caller): Promise<Attr> {
    return entries.symlink(this.core, fsId, parent, name, target, caller);
  }
  async readlink(fsId: number, ino: Ino): Promise<Buffer> {
    return this.core.measure('readlink', async () => {
      await this.core.fs(fsId);
      const raw = await this.engine.get(inodeKey(fsId, ino));
      if (!raw) throw fsError('ENOENT', `inode ${ino} does not exist`);
      const rec = decodeInode(ino, raw.value);
      if (!rec.target) throw fsError('EINVAL', `inode ${ino} is not a symbolic link`);
      return rec.target;
    });
  }
  async link(fsId: number, ino: Ino, newParent: Ino, newName: Buffer): Promise<Attr> {
    return entries.link(this.core, fsId, ino, newParent, newName);
  }
  async unlink(fsId: number, parent: Ino, name: Buffer, _caller: Caller): Promise<UnlinkResult> {
    return entries.unlink(this.core, fsId, parent, name);
  }
  async rmdir(fsId: number, parent: Ino, name: Buffer): Promise<Attr> {
    return entries.rmdir(this.core, fsId, parent, name);
  }
  async rename(fsId: number, parent: Ino, name: Buffer, newParent: Ino, newName: Buffer, flags: number, _caller: Caller): Promise<Attr | undefined> {
    return rename(this.core, fsId, parent, name, newParent, newName, flags);
  }

  async readdir(fsId: number, ino: Ino, cookie: number, limit: number, plus: boolean): Promise<ReadDirResult> {
    if (!Number.isSafeInteger(cookie) || cookie < 0) throw fsError('EINVAL', `bad readdir cookie ${cookie}`);
    if (!Number.isInteger(limit) || limit < 1) throw fsError('EINVAL', `readdir limit ${limit} must be at least 1`);
    const max = Math.min(limit, MAX_READDIR);
    return this.core.measure(plus ? 'readdirplus' : 'readdir', async () => {
      await this.core.fs(fsId);
      const raw = await this.engine.get(inodeKey(fsId, ino));
      if (!raw) throw fsError('ENOENT', `directory ${ino} does not exist`);
      if (!isDir(inodeMode(ino, raw.value))) throw fsError('ENOTDIR', `inode ${ino} is not a directory`);
      const rows = await this.engine.range({
        start: readdirKey(fsId, ino, cookie + 1), end: prefixEnd(readdirPrefix(fsId, ino)), limit: max + 1,
      });
      const eof = rows.length <= max;
      const out: DirEntry[] = [];
      for (const row of rows.slice(0, max)) {
        const e = decodeReaddirEntry(row.value);
        const entryCookie = row.key.readUInt32BE(13) * 0x1_0000_0000 + row.key.readUInt32BE(17);
        if (!plus) {
          out.push({ name: e.name, ino: e.ino, type: e.type, cookie: entryCookie });
          continue;
        }
        const a = await this.engine.get(inodeKey(fsId, e.ino));
        if (!a) continue; // removed between the two reads
        out.push({ name: e.name, ino: e.ino, type: e.type, cookie: entryCookie, attr: toAttr(decodeInode(e.ino, a.value)) });
      }
      return { entries: out, eof };
    });
  }

  async getxattr(fsId: number, ino: Ino, name: string): Promise<Buffer> {
    return attrs.getxattr(this.core, fsId, ino, name);
  }
  async setxattr(fsId: number, ino: Ino, name: string, value: Buffer, flags: number): Promise<void> {
    return attrs.setxattr(this.core, fsId, ino, name, value, flags);
  }
  async listxattr(fsId: number, ino: Ino): Promise<string[]> {
    return attrs.listxattr(this.core, fsId, ino);
  }
  async removexattr(fsId: number, ino: Ino, name: string): Promise<void> {
    return attrs.removexattr(this.core, fsId, ino, name);
  }

  async getDataMap(fsId: number, ino: Ino): Promise<DataMap> {
    return data.getDataMap(this.core, fsId, ino);
  }
  async allocChunkVersions(fsId: number, count: number): Promise<number> {
    return data.allocChunkVersions(this.core, fsId, count);
  }
  async commitData(fsId: number, ino: Ino, req: CommitDataRequest): Promise<Attr> {
    return data.commitData(this.core, fsId, ino, req);
  }

  async openInode(fsId: number, ino: Ino, sessionId: string): Promise<void> {
    return orphans.openInode(this.core, fsId, ino, sessionId);
  }
  async releaseInode(fsId: number, ino: Ino, sessionId: string): Promise<void> {
    return orphans.releaseInode(this.core, fsId, ino, sessionId);
  }
  async expireSession(sessionId: string): Promise<number> {
    return orphans.expireSession(this.core, sessionId);
  }

  subscribe(fsId: number, fromSeq: number, handlers: SubscribeHandlers): Subscription {
    return this.feed.subscribe(fsId, fromSeq, handlers);
  }

  /** The latest seq of a file system's feed, when the feed knows it (in-process feed). */
  lastSeq(fsId: number): number {
    return this.feed instanceof InProcessFeed ? this.feed.lastSeq(fsId) : 0;
  }

  /** One re-replication pass now, over every replicated file system or only `fsId`. */
  async repair(fsId?: number): Promise<RepairSummary> {
    if (!this.repairer) throw fsError('EOPNOTSUPP', 'this metaserver does not re-replicate: it needs the datastore list of the MDS (--mds without --datastore)');
    return this.repairer.runOnce(fsId);
  }

  /**
   * Makes every acknowledged change durable (MetaService.flush). The engine is shared by all file
   * systems, so this flushes them all: lmdb commits are whole-store anyway.
   */
  async flush(fsId: number): Promise<void> {
    await this.core.fs(fsId);
    await this.engine.flush?.();
  }

  /** One GC pass now (tests, admin). */
  runGc(now?: number): Promise<number> {
    return this.core.gc.runOnce(now);
  }

  /** One stray-object sweep pass now (tests, admin); 0 without a listing datastore. */
  sweepStrays(now?: number): Promise<number> {
    return this.sweeper?.sweepOnce(now) ?? Promise.resolve(0);
  }

  /** Stops background work and ends subscriptions; the engine stays open (its owner closes it). */
  async close(): Promise<void> {
    if (this.countTimer) clearInterval(this.countTimer);
    await this.repairer?.stop();
    await this.sweeper?.stop();
    await this.core.gc.stop();
    this.feed.close();
  }
}
