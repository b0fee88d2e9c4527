// Chunk objects on their way to the datastore: a chunk's bytes read from its backing file and put
// (at flush, and early for a sequential writer's completed chunks), and the puts not committed yet
// (InodeData.uploaded): the next flush reuses one whose chunk did not change since, and one that is
// superseded, or whose file is gone, is deleted.
import { moduleLogger } from '../common/logger';
import type { DataService, PutOptions } from '../datastore/api';
import type { ChunkRef, MetaService } from '../metaserver/api';
import { linkedBytes, uploadedBytes } from './client-metrics';
import type { InodeData } from './inode-data';

const log = moduleLogger('file-data');

/** Chunks up to this size are read from the backing file for upload without leaving the event loop. */
const SYNC_READ_BYTES = 256 * 1024;
/** Uploads leave the datastore's fsyncs to FileData.syncData() (fsync, O_SYNC, unmount): close stays cheap. */
const DEFER_SYNC: PutOptions = { deferSync: true };

export interface UploadDeps {
  readonly meta: MetaService;
  readonly data: DataService;
  readonly fsId: number;
  readonly chunkSize: number;
}

export class ChunkUploads {
  /** Upload buffers, reused: a fresh 4 MiB buffer per chunk cost ~0.3 s of GC per GiB uploaded. */
  private readonly bufferPool: Buffer[] = [];

  /** `maxPooled`: upload buffers kept for reuse. */
  constructor(private readonly d: UploadDeps, private readonly maxPooled: number) {}

  /**
   * Stores the chunk's bytes from the backing file as object `ref` (zeros past the file's end). A
   * write racing the upload bumps the chunk's generation, so the commit leaves it dirty for the
   * next flush.
   */
  async put(st: InodeData, ref: ChunkRef): Promise<void> {
    const cs = this.d.chunkSize;
    const key = { fsId: this.d.fsId, ino: st.ino, index: ref.index, version: ref.version };
    const fd = st.backing.openFd;
    if (this.d.data.putFromFile && fd !== undefined && ref.length > SYNC_READ_BYTES) {
      // A store in this process (`kurve up`) reads the bytes into the buffer it writes the object
      // from (page-aligned for O_DIRECT): one copy less than reading them here.
      await this.d.data.putFromFile(key, fd, ref.index * cs, ref.length, DEFER_SYNC);
    } else {
      // Read off the event loop into a reused buffer (no GC churn); a small chunk is read at once
      // (a page-cache copy of tens of µs): a thread hand-off would cost more than the read.
      const whole = this.takeBuffer();
      try {
        const buf = whole.subarray(0, ref.length);
        const n = ref.length <= SYNC_READ_BYTES ? st.backing.read(buf, ref.index * cs) : await st.backing.readAsync(buf, ref.index * cs);
        if (n < ref.length) buf.fill(0, n);
        await this.d.data.put(key, buf, undefined, DEFER_SYNC);
      } finally {
        this.giveBuffer(whole);
      }
    }
    uploadedBytes.inc(ref.length);
  }

  /** A chunk-sized upload buffer from the pool (a put is done with its buffer when it resolves). */
  private takeBuffer(): Buffer {
    return this.bufferPool.pop() ?? Buffer.allocUnsafeSlow(this.d.chunkSize);
  }

  private giveBuffer(b: Buffer): void {
    if (this.bufferPool.length < this.maxPooled) this.bufferPool.push(b);
  }

  /**
   * A sequential writer just completed chunk `index`: upload it now, overlapping the rest of the
   * writes, so close has less left to do. Only the commit (at flush) makes it visible; if the
   * chunk is written again meanwhile, its generation moves on and flush uploads it afresh.
   */
  early(st: InodeData, index: number): void {
    const gen = st.dirty.get(index);
    if (gen === undefined || st.uploading.has(index) || st.uploaded.get(index)?.gen === gen) return;
    const cs = this.d.chunkSize;
    this.ahead(st, index, 'early upload failed; flush will upload', async () => {
      const version = await this.d.meta.allocChunkVersions(this.d.fsId, 1);
      // Read the bytes in the same tick as the generation check: they are exactly that generation.
      if (st.dirty.get(index) !== gen || st.backing.closed) return;
      const length = Math.min(cs, st.size - index * cs);
      if (length <= 0) return;
      const buf = Buffer.allocUnsafe(length);
      const n = st.backing.read(buf, index * cs);
      if (n < length) buf.fill(0, n);
      await this.d.data.put({ fsId: this.d.fsId, ino: st.ino, index, version }, buf, undefined, DEFER_SYNC);
      uploadedBytes.inc(length);
      this.note(st, { index, version, length }, gen);
    });
  }

  /**
   * Runs `work` (storing chunk `index` ahead of the flush) as the inode's upload of that chunk:
   * flush waits for it; a failure is only logged (`failed`), flush then uploads the chunk itself.
   */
  private ahead(st: InodeData, index: number, failed: string, work: () => Promise<void>): void {
    const p = work()
      .catch((err: unknown) => log.debug({ ino: st.ino, index, err: String(err) }, failed))
      .finally(() => st.uploading.delete(index));
    st.uploading.set(index, p);
  }

  /** The store can link objects (storedClean, link). */
  get canLink(): boolean {
    return this.d.data.linkObject !== undefined;
  }

  /**
   * The stored object chunk `index` is, when its local bytes are exactly that object (clean, held
   * at its version, no passthrough writer) and the store can link: copy_file_range then links it
   * for the destination instead of uploading the bytes again (link()).
   */
  storedClean(st: InodeData, index: number): ChunkRef | undefined {
    if (!this.canLink || st.writablePtHandles > 0 || st.dirty.has(index)) return undefined;
    const ref = st.refs.get(index);
    return ref && ref.length > 0 && st.present.get(index) === ref.version ? ref : undefined;
  }

  /**
   * copy_file_range just wrote the bytes of the stored chunk `from.ref` (of inode `from.ino`) as
   * chunk `index` of `dst`: a store that links objects (`kurve up`) stores them under dst's key
   * without moving a byte, as if uploaded early; flush then only commits. If dst's chunk is written
   * again meanwhile (or the source object is gone), flush uploads it as usual.
   */
  link(from: { ino: number; ref: ChunkRef }, dst: InodeData, index: number): void {
    const linkObject = this.d.data.linkObject;
    const gen = dst.dirty.get(index);
    if (!linkObject || gen === undefined || dst.uploading.has(index)) return;
    this.ahead(dst, index, 'linking a copied chunk failed; flush will upload it', async () => {
      const version = await this.d.meta.allocChunkVersions(this.d.fsId, 1);
      const source = { fsId: this.d.fsId, ino: from.ino, index: from.ref.index, version: from.ref.version };
      if (!(await linkObject.call(this.d.data, source, { fsId: this.d.fsId, ino: dst.ino, index, version }, DEFER_SYNC))) return;
      if (dst.dirty.get(index) !== gen) {
        this.deleteObject(dst.ino, index, version);
        return;
      }
      this.note(dst, { index, version, length: from.ref.length }, gen);
      linkedBytes.inc(from.ref.length);
    });
  }

  /** `ref` holds generation `gen` of its chunk (uncommitted); an older such upload is garbage. */
  note(st: InodeData, ref: ChunkRef, gen: number): void {
    const old = st.uploaded.get(ref.index);
    st.uploaded.set(ref.index, { gen, ref });
    if (old && old.ref.version !== ref.version) this.deleteObject(st.ino, ref.index, old.ref.version);
  }

  /** Uploaded objects that were never committed (rewritten or truncated away) are garbage. */
  discardStale(st: InodeData): void {
    for (const [index, u] of [...st.uploaded]) {
      if (st.dirty.get(index) === u.gen) continue;
      st.uploaded.delete(index);
      this.deleteObject(st.ino, index, u.ref.version);
    }
  }

  deleteObject(ino: number, index: number, version: number): void {
    this.d.data.delete({ fsId: this.d.fsId, ino, index, version }).catch(() => undefined);
  }
}
