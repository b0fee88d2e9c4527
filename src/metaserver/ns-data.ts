// File data maps: the chunk list of a regular file, atomic commits of new chunks, truncation and
// chunk version allocation. Replaced and dropped chunk objects go to the GC queue after a grace
// period (a reader elsewhere may be mid-read of the old version).
import { fsError } from '../common/errno';
import type { Attr, ChunkRef, CommitDataRequest, DataMap } from './api';
import type { Core } from './core';
import { allocOf, decodeChunk, decodeInode, encodeChunk, InodeRec, isDir, isReg, nowTs, readU64Value, toAttr } from './inode';
import { ALLOC_SWEPT, ALLOC_VERSION, allocKey, chunkKey, chunkPrefix, inodeKey, keyU64b } from './keys';
import type { Tx } from './txn';

/** Largest file size: 2^53 - 1 bytes would do, but keep index × chunkSize exact and sane. */
export const MAX_FILE_SIZE = 2 ** 50;
/** Chunks per commit: 256 GiB of 4 MiB chunks (a client commits every dirty chunk of a file at once). */
export const MAX_CHUNKS_PER_COMMIT = 65536;

export function requireRegular(rec: InodeRec, what: string): void {
  if (isDir(rec.mode)) throw fsError('EISDIR', `${what}: inode ${rec.ino} is a directory`);
  if (!isReg(rec.mode)) throw fsError('EINVAL', `${what}: inode ${rec.ino} is not a regular file`);
}

export function checkSize(size: number, what = 'size'): void {
  if (!Number.isSafeInteger(size) || size < 0) throw fsError('EINVAL', `${what} ${size} is not a valid file size`);
  if (size > MAX_FILE_SIZE) throw fsError('EFBIG', `${what} ${size} exceeds the maximum file size ${MAX_FILE_SIZE}`);
}

async function chunks(tx: Tx, ino: number): Promise<ChunkRef[]> {
  const entries = await tx.range(chunkPrefix(tx.fsId, ino));
  return entries.map((e) => decodeChunk(keyU64b(e.key), e.value));
}

export async function getDataMap(core: Core, fsId: number, ino: number): Promise<DataMap> {
  return core.measure('getDataMap', async () => {
    const fs = await core.fs(fsId);
    const raw = await core.engine.get(inodeKey(fsId, ino));
    if (!raw) throw fsError('ENOENT', `inode ${ino} does not exist`);
    const rec = decodeInode(ino, raw.value);
    requireRegular(rec, 'getDataMap');
    const entries = await core.engine.range({ prefix: chunkPrefix(fsId, ino) });
    return {
      ino, size: rec.size, dataVersion: rec.dataVersion, chunkSize: fs.chunkSize,
      chunks: entries.map((e) => decodeChunk(keyU64b(e.key), e.value)),
    };
  });
}

/**
 * Drops chunks wholly past `size` and trims the one it falls in (its object keeps the old bytes;
 * readers stop at the chunk length and at the file size, so the tail reads as zeros if regrown).
 */
export async function truncateChunks(core: Core, tx: Tx, rec: InodeRec, size: number, chunkSize: number): Promise<void> {
  if (size >= rec.size) return;
  const list = await chunks(tx, rec.ino);
  rec.alloc ??= sumAlloc(list);
  for (const c of list) {
    const start = c.index * chunkSize;
    if (start >= size) {
      tx.del(chunkKey(tx.fsId, rec.ino, c.index));
      rec.alloc -= allocOf(c.length);
      core.gc.enqueue(tx, { fsId: tx.fsId, ino: rec.ino, chunk: { index: c.index, version: c.version } }, core.gc.graceMs);
    } else if (start + c.length > size) {
      tx.put(chunkKey(tx.fsId, rec.ino, c.index), encodeChunk({ ...c, length: size - start }));
      rec.alloc += allocOf(size - start) - allocOf(c.length);
    }
  }
}

function sumAlloc(list: ChunkRef[]): number {
  let n = 0;
  for (const c of list) n += allocOf(c.length);
  return n;
}

export async function commitData(core: Core, fsId: number, ino: number, req: CommitDataRequest): Promise<Attr> {
  checkSize(req.size);
  if (!Array.isArray(req.chunks) || req.chunks.length > MAX_CHUNKS_PER_COMMIT) {
    throw fsError('EINVAL', `commitData: at most ${MAX_CHUNKS_PER_COMMIT} chunks per commit`);
  }
  const { chunkSize } = await core.fs(fsId);
  const seen = new Set<number>();
  for (const c of req.chunks) {
    if (!Number.isSafeInteger(c.index) || c.index < 0 || c.index * chunkSize >= MAX_FILE_SIZE) throw fsError('EINVAL', `commitData: bad chunk index ${c.index}`);
    if (!Number.isSafeInteger(c.version) || c.version <= 0) throw fsError('EINVAL', `commitData: bad chunk version ${c.version}`);
    if (!Number.isInteger(c.length) || c.length < 0 || c.length > chunkSize) {
      throw fsError('EINVAL', `commitData: chunk ${c.index} length ${c.length} is outside 0..${chunkSize}`);
    }
    if (seen.has(c.index)) throw fsError('EINVAL', `commitData: chunk ${c.index} listed twice`);
    seen.add(c.index);
  }
  return core.run(fsId, 'commitData', async (tx) => {
    const rec = await tx.mustInode(ino);
    requireRegular(rec, 'commitData');
    // Versions below the stray sweep's floor may have been deleted as unreferenced (sweep.ts).
    const floorRaw = req.chunks.length > 0 ? await tx.get(allocKey(fsId, ALLOC_SWEPT)) : undefined;
    const floor = floorRaw ? readU64Value(floorRaw) : 0;
    // A record from before allocation was kept: count it once from the map (before any change below).
    rec.alloc ??= sumAlloc(await chunks(tx, ino));
    // Shrink first, so the new chunks below are never trimmed or dropped by it.
    if (req.size < rec.size) await truncateChunks(core, tx, rec, req.size, chunkSize);
    for (const c of req.chunks) {
      const key = chunkKey(fsId, ino, c.index);
      const old = await tx.get(key);
      if (c.version < floor && !(old && decodeChunk(c.index, old).version === c.version)) {
        throw fsError('ESTALE', `commitData: chunk ${c.index} version ${c.version} is older than the stray sweep's floor ${floor}: upload it again`);
      }
      if (old) {
        const prev = decodeChunk(c.index, old);
        rec.alloc -= allocOf(prev.length);
        if (prev.version !== c.version) {
          core.gc.enqueue(tx, { fsId, ino, chunk: { index: c.index, version: prev.version } }, core.gc.graceMs);
        }
      }
      rec.alloc += allocOf(c.length);
      tx.put(key, encodeChunk(c));
    }
    rec.size = req.size;
    rec.dataVersion++;
    const now = nowTs();
    rec.ctime = now;
    if (req.touch) rec.mtime = now;
    tx.markDirty(rec);
    tx.event({ kind: 'data', ino, dataVersion: rec.dataVersion });
    tx.event({ kind: 'attr', ino });
    return toAttr(rec);
  });
}

export async function allocChunkVersions(core: Core, fsId: number, count: number): Promise<number> {
  if (!Number.isInteger(count) || count < 1 || count > 65536) throw fsError('EINVAL', `allocChunkVersions: count ${count} is outside 1..65536`);
  await core.fs(fsId);
  return core.alloc.next(fsId, ALLOC_VERSION, count);
}
