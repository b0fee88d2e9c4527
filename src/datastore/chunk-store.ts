// ChunkStore: DataService over a local directory. One file per object, written atomically (temp
// file, fsync, rename, fsync dir) and checked with CRC32C on write and on every read: a damaged
// object is an EIO naming the key, never wrong bytes. A put with deferSync (the in-process client
// of `kurve up`) skips the two fsyncs; flush() does them later for every such object (at the
// user's fsync; one syncfs when there are many), so closing a written file costs page-cache
// writes, not a disk flush. Objects of 1 MiB or more are written with O_DIRECT (direct-write.ts):
// the client that wrote them holds the same bytes in its cache already.
//
// Layout: DIR/objects/<fs>/<ino % 256>/<(ino / 256) % 256>/<ino>/<index>.<version>, DIR/tmp/.
// Two 256-way levels keep directories small for millions of inodes; one inode's chunks share a
// directory so deleteInode is one readdir.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsError } from '../common/errno';
import { moduleLogger } from '../common/logger';
import { counter, gauge } from '../common/metrics';
import { ChunkKey, DataService, DataStats, ListedObject, ObjectPage, PutOptions } from './api';
import { writeFully, writeFullySync } from './file-io';
import { ObjectSyncs } from './object-syncs';
import { countObjects, saveCounts, takeSavedCounts } from './store-counts';
import { takePidLock } from '../common/pid-lock';
import { DIRECT_MIN_BYTES, readInto, releaseImage, takeImage, writeObjectDirect } from './direct-write';
import { formatKey, ioError, validateKey } from './object-keys';
import { checksums, ChecksumError, decodeFixedHeader, decodeHeader, encodeHeader, HEADER_BYTES, verifyBlocks } from './chunk-format';

export { formatKey, validateKey } from './object-keys';

const log = moduleLogger('datastore');
/** The store's owner lock (a pid file): one live store per directory. */
const LOCK_FILE = 'kurve-store.pid';

const bytesTotal = counter({
  name: 'kurve_datastore_bytes_total',
  help: 'Chunk bytes written (op=put) and read (op=get) by the datastore',
  labelNames: ['op'] as const,
});
const checksumErrors = counter({
  name: 'kurve_datastore_checksum_errors_total',
  help: 'Reads or writes refused because a CRC32C did not match',
  labelNames: ['op'] as const,
});
const objectsGauge = gauge({ name: 'kurve_datastore_objects', help: 'Chunk objects stored' });
const usedGauge = gauge({ name: 'kurve_datastore_used_bytes', help: 'Bytes used by chunk objects (files on disk)' });

/** Largest object accepted: the largest chunk size a file system may have (64 MiB). */
export const MAX_OBJECT_BYTES = 64 * 1024 * 1024;

export interface ChunkStoreOptions {
  readonly maxObjectBytes?: number;
  /** fsync files and directories (default true; only benchmarks of the rest turn it off). */
  readonly sync?: boolean;
  /** Write objects of DIRECT_MIN_BYTES or more with O_DIRECT (default true, see direct-write.ts). */
  readonly directIo?: boolean;
  /**
   * Objects put with deferSync are synced by flush(), and at the latest this long after their put
   * (default 5 s, 0 = only by flush): bounds what a machine crash can take without an fsync.
   */
  readonly deferredSyncMs?: number;
}

/** Objects up to this size, when no fsync is due at once, are written with synchronous calls. */
const SYNC_PUT_BYTES = 256 * 1024;


export class ChunkStore implements DataService {
  private readonly objects: string;
  private readonly tmp: string;
  private readonly maxObjectBytes: number;
  private readonly sync: boolean;
  /** Large objects go past the page cache; cleared when the file system refuses O_DIRECT. */
  private direct: boolean;
  private used = 0;
  private count = 0;
  /** Per-object operation chains, so concurrent put/delete of one key keep the counters right. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Objects (and directories) written with deferSync and not yet fsync'ed: flush() syncs them. */
  private readonly syncs: ObjectSyncs;
  /** Deferred puts still running: flush() waits for them, so it covers every put before it. */
  private readonly deferredPuts = new Set<Promise<void>>();
  private readonly deferredSyncMs: number;
  private syncTimer?: NodeJS.Timeout;
  /** Temp names: a random prefix per store (two stores never share one) and a counter. */
  private readonly tmpPrefix = `${randomBytes(6).toString('hex')}-`;
  private tmpSeq = 0;
  private lockFile?: string;

  private constructor(readonly dir: string, opts: ChunkStoreOptions) {
    this.objects = path.join(dir, 'objects');
    this.tmp = path.join(dir, 'tmp');
    this.maxObjectBytes = opts.maxObjectBytes ?? MAX_OBJECT_BYTES;
    this.sync = opts.sync ?? true;
    this.direct = opts.directIo ?? true;
    this.deferredSyncMs = opts.deferredSyncMs ?? 5000;
    this.syncs = new ObjectSyncs(this.objects, this.sync);
  }

  /** Opens (creating if needed) a store in `dir`: clears leftover temp files, counts objects. */
  static async open(dir: string, opts: ChunkStoreOptions = {}): Promise<ChunkStore> {
    const s = new ChunkStore(dir, opts);
    await fs.promises.mkdir(s.objects, { recursive: true });
    // Before anything is cleaned up: another live store here owns those temp files.
    s.lockFile = takePidLock(dir, LOCK_FILE, 'one datastore per directory');
    await fs.promises.rm(s.tmp, { recursive: true, force: true });
    await fs.promises.mkdir(s.tmp, { recursive: true });
    const t0 = Date.now();
    const saved = await takeSavedCounts(dir);
    ({ count: s.count, used: s.used } = saved ?? (await countObjects(s.objects)));
    s.publish();
    log.info({ dir, objects: s.count, usedBytes: s.used, counted: saved ? 'at the last clean close' : `now, in ${Date.now() - t0} ms` }, 'chunk store opened');
    return s;
  }

  private publish(): void {
    objectsGauge.set(this.count);
    usedGauge.set(this.used);
  }

  private inodeDir(fsId: number, ino: number): string {
    const lo = (ino % 256).toString(16).padStart(2, '0');
    const hi = (Math.floor(ino / 256) % 256).toString(16).padStart(2, '0');
    return path.join(this.objects, String(fsId), lo, hi, String(ino));
  }

  private objectPath(k: ChunkKey): string {
    return path.join(this.inodeDir(k.fsId, k.ino), `${k.index}.${k.version}`);
  }

  private async locked<T>(p: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(p) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(p, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(p) === tail) this.locks.delete(p);
    }
  }

  /** Stores the object atomically. `crc` (CRC32C of data, from the writer) is checked when given. */
  async put(key: ChunkKey, data: Buffer, crc?: number, opts?: PutOptions): Promise<void> {
    validateKey(key);
    const defer = this.sync && opts?.deferSync === true;
    return this.tracked(key, defer, this.putObject(key, data, crc, defer));
  }

  /**
   * put() of bytes [offset, offset+length) of the open file `fd` (zeros past its end), for the
   * client in this process: they are read straight into the buffer the object is written from,
   * and the checksums come from that copy (a writer changing the file meanwhile cannot make the
   * object disagree with its header).
   */
  async putFromFile(key: ChunkKey, fd: number, offset: number, length: number, opts?: PutOptions): Promise<void> {
    validateKey(key);
    for (const [name, v] of [['fd', fd], ['offset', offset], ['length', length]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw fsError('EINVAL', `invalid ${name} ${v}`);
    }
    const defer = this.sync && opts?.deferSync === true;
    return this.tracked(key, defer, this.putFileObject(key, fd, offset, length, defer));
  }

  /** A put's errors as FsErrors; a deferred one is tracked for flush() and arms the sync timer. */
  private tracked(key: ChunkKey, defer: boolean, work: Promise<void>): Promise<void> {
    const p = work.catch((err: unknown) => {
      throw ioError(err, `writing chunk ${formatKey(key)}`);
    });
    if (!defer) return p;
    const settled = p.catch(() => undefined);
    this.deferredPuts.add(settled);
    void settled.finally(() => this.deferredPuts.delete(settled));
    if (!this.syncTimer && this.deferredSyncMs > 0) {
      this.syncTimer = setTimeout(() => {
        this.syncTimer = undefined;
        this.flush().catch((err: unknown) => log.error({ err: String(err) }, 'background sync of chunk objects failed'));
      }, this.deferredSyncMs);
      this.syncTimer.unref();
    }
    return p;
  }

  private tmpPath(): string {
    return path.join(this.tmp, `${this.tmpPrefix}${++this.tmpSeq}.tmp`);
  }

  private async putFileObject(key: ChunkKey, fd: number, offset: number, length: number, defer: boolean): Promise<void> {
    if (length > this.maxObjectBytes) {
      throw fsError('EINVAL', `object of ${length} bytes exceeds the limit of ${this.maxObjectBytes} bytes`);
    }
    const tmp = this.tmpPath();
    const img = takeImage(length);
    const size = img.whole.length;
    try {
      const n = await readInto(fd, img.data, offset);
      if (n < length) img.data.fill(0, n);
      const sums = checksums(img.data);
      encodeHeader(img.data, sums.dataCrc, sums.blockCrcs).copy(img.whole, 0);
      await this.writeTmp(tmp, img.whole, this.sync && !defer);
    } finally {
      releaseImage(img);
    }
    await this.commitTmp(this.objectPath(key), tmp, size, defer);
    bytesTotal.labels('put').inc(length);
    this.publish();
  }

  private async putObject(key: ChunkKey, data: Buffer, crc: number | undefined, defer: boolean): Promise<void> {
    if (data.length > this.maxObjectBytes) {
      throw fsError('EINVAL', `object of ${data.length} bytes exceeds the limit of ${this.maxObjectBytes} bytes`);
    }
    // One pass over the data for the block table and the whole-object CRC.
    const sums = checksums(data);
    const actual = sums.dataCrc;
    if (crc !== undefined && crc >>> 0 !== actual) {
      checksumErrors.labels('put').inc();
      throw fsError('EIO', `checksum mismatch on write of ${formatKey(key)}: sent ${crc >>> 0}, received data has ${actual}`);
    }
    const header = encodeHeader(data, actual, sums.blockCrcs);
    const target = this.objectPath(key);
    const tmp = this.tmpPath();
    if (data.length <= SYNC_PUT_BYTES && (defer || !this.sync) && !this.locks.has(target)) {
      this.putSmallSync(target, tmp, header, data, defer);
    } else {
      await this.putAsync(target, tmp, header, data, defer);
    }
    bytesTotal.labels('put').inc(data.length);
    this.publish();
  }

  /**
   * A small object without an fsync to wait for, written with synchronous calls: a few page-cache
   * writes and a rename take tens of µs, while the same calls through the libuv threadpool cost
   * a thread hand-off each (measured ~1.2 ms per small put of `cp -a` into `kurve up`, ~7 hops).
   * Nothing else runs meanwhile, so no other operation on this key can interleave (the caller
   * checked that none is in flight).
   */
  private putSmallSync(target: string, tmp: string, header: Buffer, data: Buffer, defer: boolean): void {
    const fd = fs.openSync(tmp, 'wx', 0o644);
    try {
      writeFullySync(fd, [header, data]);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    fs.closeSync(fd);
    const dir = path.dirname(target);
    let created = fs.mkdirSync(dir, { recursive: true });
    const old = fs.statSync(target, { throwIfNoEntry: false });
    try {
      fs.renameSync(tmp, target);
    } catch (err) {
      // deleteInode may have removed the (then empty) directory between mkdir and rename.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      created = fs.mkdirSync(dir, { recursive: true }) ?? created;
      fs.renameSync(tmp, target);
    }
    void this.syncs.placed(target, created, defer); // deferred, or not syncing: nothing to wait for
    this.account(old?.size, header.length + data.length);
  }

  private async putAsync(target: string, tmp: string, header: Buffer, data: Buffer, defer: boolean): Promise<void> {
    const sync = this.sync && !defer;
    if (this.direct && data.length >= DIRECT_MIN_BYTES) {
      const img = takeImage(data.length);
      try {
        header.copy(img.whole, 0);
        data.copy(img.data);
        await this.writeTmp(tmp, img.whole, sync);
      } finally {
        releaseImage(img);
      }
    } else {
      await this.writeBuffered(tmp, [header, data], sync);
    }
    await this.commitTmp(target, tmp, header.length + data.length, defer);
  }

  /**
   * Writes a whole object image (page-aligned, from takeImage) to `tmp`: objects of
   * DIRECT_MIN_BYTES or more past the page cache (direct-write.ts), unless this file system
   * refuses O_DIRECT (then never tried again).
   */
  private async writeTmp(tmp: string, image: Buffer, sync: boolean): Promise<void> {
    if (this.direct && image.length >= DIRECT_MIN_BYTES) {
      if (await writeObjectDirect(tmp, image, sync)) return;
      this.direct = false;
      log.info({ dir: this.dir }, 'this file system refuses O_DIRECT: chunk objects go through the page cache');
    }
    await this.writeBuffered(tmp, [image], sync);
  }

  private async writeBuffered(tmp: string, bufs: Buffer[], sync: boolean): Promise<void> {
    const fh = await fs.promises.open(tmp, 'wx', 0o644);
    try {
      await writeFully(fh, bufs);
      if (sync) await fh.sync();
    } catch (err) {
      await fh.close();
      await fs.promises.rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
  }

  /** Renames a complete temp object into place (syncing its directories unless deferred). */
  private async commitTmp(target: string, tmp: string, size: number, defer: boolean): Promise<void> {
    await this.locked(target, async () => {
      const dir = path.dirname(target);
      const created = await fs.promises.mkdir(dir, { recursive: true });
      const old = await fs.promises.stat(target).catch(() => undefined);
      await fs.promises.rename(tmp, target);
      await this.syncs.placed(target, created, defer);
      this.account(old?.size, size);
    });
  }

  /**
   * Stores the object `from` also as `to` without copying a byte: a hard link (objects are never
   * changed in place, and a delete removes one name). False when `from` is not stored (any more).
   */
  async linkObject(from: ChunkKey, to: ChunkKey, opts?: PutOptions): Promise<boolean> {
    validateKey(from);
    validateKey(to);
    const defer = this.sync && opts?.deferSync === true;
    const source = this.objectPath(from);
    const target = this.objectPath(to);
    return this.locked(target, async () => {
      const dir = path.dirname(target);
      let created: string | undefined;
      for (let attempt = 1; ; attempt++) {
        created = (await fs.promises.mkdir(dir, { recursive: true })) ?? created;
        try {
          await fs.promises.link(source, target);
          break;
        } catch (err) {
          // ENOENT: the source is gone, or deleteInode removed the (empty) target directory.
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 1) throw ioError(err, `linking chunk ${formatKey(from)} as ${formatKey(to)}`);
          if (!fs.existsSync(source)) return false;
        }
      }
      await this.syncs.placed(target, created, defer);
      this.account(undefined, (await fs.promises.stat(target)).size);
      this.publish();
      return true;
    });
  }

  /** Counters for an object of `size` bytes written over one of `oldSize` (undefined = new). */
  private account(oldSize: number | undefined, size: number): void {
    if (oldSize !== undefined) this.used -= oldSize;
    else this.count++;
    this.used += size;
  }

  /**
   * Makes every object put with deferSync so far durable: waits for such puts still running, then
   * fsyncs their files and directories (object-syncs.ts).
   */
  async flush(): Promise<void> {
    return this.syncs.flush(async () => {
      if (this.deferredPuts.size > 0) await Promise.all([...this.deferredPuts]);
    });
  }

  async get(key: ChunkKey, offset = 0, length = -1): Promise<Buffer> {
    return (await this.read(key, offset, length)).data;
  }

  /** get() that also tells the object's whole length. */
  async read(key: ChunkKey, offset = 0, length = -1): Promise<{ data: Buffer; objectLength: number }> {
    validateKey(key);
    return this.readObject(key, offset, length).catch((err: unknown) => {
      throw ioError(err, `reading chunk ${formatKey(key)}`);
    });
  }

  private async readObject(key: ChunkKey, offset: number, length: number): Promise<{ data: Buffer; objectLength: number }> {
    if (!Number.isSafeInteger(offset) || offset < 0) throw fsError('EINVAL', `invalid offset ${offset}`);
    if (!Number.isSafeInteger(length) || length < -1) throw fsError('EINVAL', `invalid length ${length}`);
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(this.objectPath(key), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw fsError('ENOENT', `no chunk ${formatKey(key)}`);
      throw err;
    }
    try {
      const out = await this.readRange(fh, offset, length);
      bytesTotal.labels('get').inc(out.data.length);
      return out;
    } catch (err) {
      if (err instanceof ChecksumError) {
        checksumErrors.labels('get').inc();
        log.error({ key: formatKey(key), reason: err.message }, 'corrupt chunk object');
        throw fsError('EIO', `chunk ${formatKey(key)} is corrupt: ${err.message}`);
      }
      throw err;
    } finally {
      await fh.close();
    }
  }

  private async readHeader(fh: fs.promises.FileHandle) {
    const fixed = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await fh.read(fixed, 0, HEADER_BYTES, 0);
    const h = decodeFixedHeader(fixed.subarray(0, bytesRead));
    const table = Buffer.alloc(4 * h.blockCount);
    const t = await fh.read(table, 0, table.length, HEADER_BYTES);
    const header = decodeHeader(fixed, table.subarray(0, t.bytesRead));
    const { size } = await fh.stat();
    if (size !== header.dataOffset + header.dataLength) {
      throw new ChecksumError(`file is ${size} bytes, header says ${header.dataOffset + header.dataLength}`);
    }
    return header;
  }

  private async readRange(fh: fs.promises.FileHandle, offset: number, length: number) {
    const h = await this.readHeader(fh);
    const objectLength = h.dataLength;
    const end = length === -1 ? h.dataLength : Math.min(h.dataLength, offset + length);
    if (offset >= end) return { data: Buffer.alloc(0), objectLength };
    // Read whole blocks so every byte returned is covered by a verified CRC.
    const first = Math.floor(offset / h.blockBytes);
    const last = Math.floor((end - 1) / h.blockBytes);
    const from = first * h.blockBytes;
    const to = Math.min(h.dataLength, (last + 1) * h.blockBytes);
    const buf = Buffer.allocUnsafe(to - from);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, h.dataOffset + from + got);
      if (bytesRead === 0) throw new ChecksumError('short read');
      got += bytesRead;
    }
    verifyBlocks(h, first, buf);
    return { data: buf.subarray(offset - from, end - from), objectLength };
  }

  async delete(key: ChunkKey): Promise<void> {
    validateKey(key);
    await this.remove(this.objectPath(key));
    this.publish();
  }

  private async remove(p: string): Promise<boolean> {
    return this.locked(p, async () => {
      const st = await fs.promises.stat(p).catch(() => undefined);
      if (!st) return false;
      try {
        await fs.promises.unlink(p);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw err;
      }
      this.count--;
      this.used -= st.size;
      return true;
    });
  }

  async deleteInode(fsId: number, ino: number): Promise<number> {
    validateKey({ fsId, ino, index: 0, version: 0 });
    const dir = this.inodeDir(fsId, ino);
    let names: string[];
    try {
      names = await fs.promises.readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    let n = 0;
    for (const name of names) if (/^\d+\.\d+$/.test(name) && (await this.remove(path.join(dir, name)))) n++;
    // A put racing with this may have added a file: then the directory stays, which is harmless.
    await fs.promises.rmdir(dir).catch(() => undefined);
    this.publish();
    return n;
  }

  async deleteMany(keys: ChunkKey[]): Promise<number> {
    keys.forEach((k) => validateKey(k));
    let n = 0;
    for (const k of keys) if (await this.remove(this.objectPath(k))) n++;
    this.publish();
    return n;
  }

  /**
   * Objects in path order (fs / ino hash / ino / index.version), `limit` at a time; `after` is
   * the previous page's `next` (the relative path of its last object).
   */
  async list(after: string | undefined, limit: number): Promise<ObjectPage> {
    if (!Number.isInteger(limit) || limit < 1) throw fsError('EINVAL', `list limit ${limit} must be at least 1`);
    const from = after ? after.split('/') : [];
    if (from.length !== 0 && from.length !== 5) throw fsError('EINVAL', `list: bad continuation '${after}'`);
    const objects: ListedObject[] = [];
    let last: string[] | undefined;
    const walk = async (dir: string, depth: number, rel: string[], bound: string[] | undefined): Promise<boolean> => {
      let names: string[];
      try {
        names = (await fs.promises.readdir(dir)).sort();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return true;
        throw err;
      }
      for (const name of names) {
        const b = bound?.[0];
        if (b !== undefined && (depth === 4 ? name <= b : name < b)) continue;
        const p = path.join(dir, name);
        if (depth < 4) {
          if (!(await walk(p, depth + 1, [...rel, name], b === name ? bound!.slice(1) : undefined))) return false;
          continue;
        }
        const m = /^(\d+)\.(\d+)$/.exec(name);
        const [fsId, , , ino] = rel.map(Number);
        if (!m || !Number.isSafeInteger(fsId) || !Number.isSafeInteger(ino)) continue;
        const st = await fs.promises.stat(p).catch(() => undefined);
        if (!st) continue; // deleted meanwhile
        objects.push({ key: { fsId, ino, index: Number(m[1]), version: Number(m[2]) }, length: st.size, mtimeMs: Math.floor(st.mtimeMs) });
        last = [...rel, name];
        if (objects.length >= limit) return false;
      }
      return true;
    };
    const complete = await walk(this.objects, 0, [], from.length ? from : undefined);
    return complete ? { objects } : { objects, next: last!.join('/') };
  }

  async stats(): Promise<DataStats> {
    const st = await fs.promises.statfs(this.dir);
    return {
      capacityBytes: st.blocks * st.bsize,
      usedBytes: this.used,
      freeBytes: st.bavail * st.bsize,
      objects: this.count,
    };
  }

  /** Waits for in-flight writes and deletes, and syncs deferred ones. No files stay open between calls. */
  async close(): Promise<void> {
    clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    await Promise.all([...this.locks.values()]);
    await this.flush();
    await saveCounts(this.dir, { count: this.count, used: this.used });
    if (this.lockFile) fs.rmSync(this.lockFile, { force: true });
    this.lockFile = undefined;
  }
}
