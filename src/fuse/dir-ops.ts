// Directory handles: opendir (the kernel may cache the listing while the change feed keeps it
// coherent, dir-cache.ts), readdir and readdirplus served from one listing per handle (stable
// offsets, vfs/readdir.ts), releasedir.
import { ROOT_INO, type Attr, type MetaService } from '../metaserver/api';
import type { DirentPlusSink, DirentSink, OpenOut, ReaddirIn } from './protocol/raw-fs';
import { HandleTable } from './vfs/handle-table';
import { DirStream, dotEntries, fillDirents, fillDirentsPlus, type ListedEntry } from './vfs/readdir';
import { openHandles } from './client-metrics';
import type { KurveFs } from './kurve-fs';

const READDIR_BATCH = 512;

type Listed = ListedEntry & { readonly attr?: Attr };

interface DirHandle {
  readonly ino: number;
  /** Opened with FOPEN_CACHE_DIR (the kernel may fill its listing cache through it). */
  readonly cached: boolean;
  readonly stream: DirStream<Listed>;
}

export class DirOps {
  private readonly handles = new HandleTable<DirHandle>();

  /** `parentOf`: a directory's parent as far as this client knows (0: unknown), for "..". */
  constructor(private readonly kfs: KurveFs, private readonly meta: MetaService, private readonly parentOf: (ino: number) => number) {}

  open(ino: number): OpenOut {
    const co = this.kfs.coherence;
    const openFlags = co.dirs.open(ino, co.subscribed && co.entryTimeout > 0);
    const fh = this.handles.add({ ino, cached: openFlags !== 0, stream: new DirStream() });
    openHandles.inc();
    return { fh, openFlags };
  }

  private async listing(h: DirHandle, plus: boolean): Promise<Listed[]> {
    const parent = h.ino === ROOT_INO ? ROOT_INO : this.parentOf(h.ino) || h.ino;
    const out: Listed[] = dotEntries(h.ino, parent);
    let cookie = 0;
    for (;;) {
      const r = await this.meta.readdir(this.kfs.fsId, h.ino, cookie, READDIR_BATCH, plus);
      for (const e of r.entries) out.push({ name: e.name, ino: e.ino, type: e.type, attr: e.attr });
      if (r.eof || r.entries.length === 0) break;
      cookie = r.entries[r.entries.length - 1].cookie;
    }
    return out;
  }

  async readdir(req: ReaddirIn, out: DirentSink): Promise<void> {
    const h = this.handles.need(req.fh);
    const entries = await h.stream.entriesAt(req.offset, () => this.listing(h, false));
    fillDirents(out, entries, req.offset);
  }

  async readdirplus(req: ReaddirIn, out: DirentPlusSink): Promise<void> {
    const h = this.handles.need(req.fh);
    const entries = await h.stream.entriesAt(req.offset, () => this.listing(h, true));
    fillDirentsPlus(
      out, entries, req.offset,
      (e) => (e.attr ? this.kfs.entryOut(e.attr) : undefined),
      (e) => {
        this.kfs.entry(h.ino, e.name, e.attr!);
      },
    );
  }

  release(fh: number): void {
    const h = this.handles.release(fh);
    if (!h) return;
    openHandles.dec();
    if (h.cached) this.kfs.coherence.dirs.release(h.ino);
  }
}
