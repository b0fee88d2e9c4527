// The datastore's contract: immutable chunk objects keyed by (fs, inode, chunk index, version),
// CRC32C-checked. Implemented in-process by ChunkStore, over gRPC by DataClient, and over several
// datastores by DataRouter.
import { FsError } from '../common/errno';

export interface ChunkKey {
  readonly fsId: number;
  readonly ino: number;
  readonly index: number;
  readonly version: number;
}

export interface DataStats {
  readonly capacityBytes: number;
  readonly usedBytes: number;
  readonly freeBytes: number;
  readonly objects: number;
}

export interface PutOptions {
  /**
   * The caller makes the object durable later through flush() (the client does at fsync), so the
   * store may skip its per-object fsync: the object survives a kill of either process at once, a
   * machine crash only after flush(). A store that has no flush() (one reached over gRPC) ignores
   * this and is durable on put, as before.
   */
  readonly deferSync?: boolean;
}

/** One stored object, as listed (for the metaserver's sweep of unreferenced objects). */
export interface ListedObject {
  readonly key: ChunkKey;
  readonly length: number;
  /** When it was written (ms since the epoch). */
  readonly mtimeMs: number;
}

export interface ObjectPage {
  readonly objects: ListedObject[];
  /** Pass as `after` for the next page; undefined when the listing is complete. */
  readonly next?: string;
}

export interface DataService {
  /**
   * Stores a whole chunk object atomically (a reader never sees half of it). `crc32c`, when given,
   * is the writer's CRC32C of `data`: a mismatch is refused with EIO (end-to-end check).
   */
  put(key: ChunkKey, data: Buffer, crc32c?: number, opts?: PutOptions): Promise<void>;
  /**
   * Optional (a store in this process): put() of bytes [offset, offset+length) of the open file
   * `fd`, zeros past its end, read by the store itself into the buffer it writes the object from.
   */
  putFromFile?(key: ChunkKey, fd: number, offset: number, length: number, opts?: PutOptions): Promise<void>;
  /**
   * Optional (a local store): stores the object `from` also under the key `to`, sharing its bytes
   * (copy_file_range of stored chunks). Resolves false when `from` is not stored.
   */
  linkObject?(from: ChunkKey, to: ChunkKey, opts?: PutOptions): Promise<boolean>;
  /** Optional: makes every object put so far with deferSync durable (fsync). */
  flush?(): Promise<void>;
  /** Reads [offset, offset+length) of an object (length -1: to the end); FsError ENOENT if absent, EIO if corrupt. */
  get(key: ChunkKey, offset?: number, length?: number): Promise<Buffer>;
  /** Deleting an absent object is not an error. */
  delete(key: ChunkKey): Promise<void>;
  /** Deletes every object of the inode (all versions), or only the listed keys. */
  deleteInode(fsId: number, ino: number): Promise<number>;
  deleteMany(keys: ChunkKey[]): Promise<number>;
  stats(): Promise<DataStats>;
  /**
   * Optional: every object, a page at a time in a stable order (`after` = the previous page's
   * `next`). Objects written while a listing runs may or may not appear in it.
   */
  list?(after: string | undefined, limit: number): Promise<ObjectPage>;
}

/**
 * The datastore did not answer (connection refused or lost, deadline passed), as opposed to an
 * answer such as ENOENT or a corrupt object: the call may be tried on another datastore.
 */
export class DatastoreUnreachableError extends FsError {}
