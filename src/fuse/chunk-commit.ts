// Flush of one inode: its dirty chunks uploaded as new immutable versions (or early uploads and
// copy_file_range links of the same generation reused), then committed atomically in the
// metaserver, in groups of at most MAX_COMMIT_CHUNKS. Callers hold the inode's serialize() chain.
import { Errno, toErrno } from '../common/errno';
import { forEachLimited } from '../common/limited';
import type { Attr, ChunkRef } from '../metaserver/api';
import type { ChunkUploads } from './chunk-uploads';
import { commits, uploadDuration } from './client-metrics';
import type { FileDataDeps } from './file-data';
import type { InodeData } from './inode-data';

/** How many chunk uploads run at once. */
export const IO_PARALLELISM = 4;
/** The metaserver's limit of chunks per commit (MAX_CHUNKS_PER_COMMIT there). */
const MAX_COMMIT_CHUNKS = 1024;

export interface CommitContext {
  readonly d: FileDataDeps;
  readonly uploads: ChunkUploads;
  /** FileData.adoptPassthroughWrites: size and dirty set as the kernel's passthrough writes left them. */
  adoptPassthroughWrites(st: InodeData): void;
  /** FileData.trimCache: committed chunks became evictable. */
  trimCache(): void;
}

/** Uploads and commits what `st` has dirty (everything in `force` mode); the new attributes, if it committed. */
export async function uploadAndCommit(c: CommitContext, st: InodeData, force: boolean, retried = false): Promise<Attr | undefined> {
  c.adoptPassthroughWrites(st);
  if (!force && st.dirty.size === 0 && !st.sizeDirty) return undefined;
  const started = process.hrtime.bigint();
  // Early uploads of this inode's full chunks (see write()) finish first, so we can reuse them.
  while (st.uploading.size > 0) await Promise.all([...st.uploading.values()]);
  const size = st.size;
  const cs = c.d.chunkSize;
  const batch = [...st.dirty].filter(([i]) => i * cs < size);
  const reused = new Map<number, ChunkRef>();
  for (const [index, gen] of batch) {
    const u = st.uploaded.get(index);
    if (u && u.gen === gen) reused.set(index, { ...u.ref, length: Math.min(u.ref.length, size - index * cs) });
  }
  const fresh = batch.filter(([index]) => !reused.has(index));
  const base = fresh.length ? await c.d.meta.allocChunkVersions(c.d.fsId, fresh.length) : 0;
  // A chunk is stored up to the end of its data in the backing file (the rest reads as zeros):
  // a sparse write stores, and st_blocks counts, what was written, not the whole chunk.
  const storedLength = (index: number): number => st.zeroed.has(index) ? 0 : st.backing.dataEnd(index * cs, Math.min((index + 1) * cs, size)) - index * cs;
  const freshRefs = new Map<number, ChunkRef>(fresh.map(([index], k) => [index, { index, version: base + k, length: storedLength(index) }]));
  const gens = new Map(batch);
  await forEachLimited([...freshRefs.values()], IO_PARALLELISM, async (ref) => {
    if (ref.length === 0) return; // punched out, readers see zeros
    await c.uploads.put(st, ref);
    // Kept as an upload of that generation until committed: if another chunk's upload fails
    // (ENOSPC), the next flush reuses it, or a delete of the file drops it — not a stray left
    // for the metaserver's sweep.
    c.uploads.note(st, ref, gens.get(ref.index)!);
  });
  const refOf = (index: number): ChunkRef => reused.get(index) ?? freshRefs.get(index)!;
  let attr: Attr | undefined;
  // The metaserver takes at most MAX_COMMIT_CHUNKS per commit; a huge flush commits in groups.
  for (let g = 0; g === 0 || g < batch.length; g += MAX_COMMIT_CHUNKS) {
    const group = batch.slice(g, g + MAX_COMMIT_CHUNKS);
    const refs = group.map(([index]) => refOf(index));
    const prevVersion = st.dataVersion;
    const expected = prevVersion + 1;
    c.d.expectCommit?.(st.ino, expected);
    try {
      attr = await c.d.meta.commitData(c.d.fsId, st.ino, { chunks: refs, size, touch: true });
    } catch (err) {
      c.d.cancelCommit?.(st.ino, expected);
      // ESTALE: an upload older than the metaserver's stray grace (an early upload held back
      // for long) may have been collected. Upload those chunks afresh, once.
      if (toErrno(err) !== Errno.ESTALE || retried) throw err;
      for (const [index] of group) st.uploaded.delete(index);
      return uploadAndCommit(c, st, force, true);
    }
    commits.inc();
    c.d.committed?.(attr);
    group.forEach(([index, gen], k) => {
      st.refs.set(index, refs[k]);
      st.uploaded.delete(index);
      if (st.dirty.get(index) === gen) {
        st.dirty.delete(index);
        st.zeroed.delete(index);
        st.present.set(index, refs[k].version);
      }
      c.d.cache.touch(st.ino, index, refs[k].length);
    });
    // Exactly one version step means nobody else committed in between: our map is current.
    if (attr.dataVersion !== prevVersion + 1 && prevVersion >= 0) st.mapStale = true;
    if (st.lastOpenVersion === prevVersion) st.lastOpenVersion = attr.dataVersion;
    st.dataVersion = attr.dataVersion;
  }
  if (st.size === size) st.sizeDirty = false;
  if (st.dirty.size === 0 && !st.sizeDirty) st.localMtime = undefined;
  c.uploads.discardStale(st);
  // Committed chunks became evictable: a writer's data counts against the limit like fetched data.
  c.trimCache();
  uploadDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  return attr;
}
