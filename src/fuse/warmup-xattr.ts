// Warmup from inside the mount (as CurveFS's warmup xattr): `setfattr -n user.kurve.warmup -v 1 PATH`
// starts prefetching the file (or, for a directory, every file below it) into the local chunk
// cache in the background; `getfattr -n user.kurve.warmup PATH` reports progress as
// "<state> <files done>/<files> <bytes done>/<bytes>" (state: running, done, failed, idle).
import { Errno, FsError } from '../common/errno';
import { moduleLogger } from '../common/logger';
import type { Attr } from '../metaserver/api';
import type { RequestContext } from './protocol/raw-fs';
import { S_IFDIR, S_IFMT, S_IFREG } from './attrs';
import type { KurveFs } from './kurve-fs';

const log = moduleLogger('warmup');
export const WARMUP_XATTR = 'user.kurve.warmup';

interface Job {
  state: 'running' | 'done' | 'failed';
  files: number;
  filesDone: number;
  bytes: number;
  bytesDone: number;
  error?: string;
}

export class Warmup {
  private readonly jobs = new Map<number, Job>();
  private closed = false;

  constructor(private readonly kfs: KurveFs) {}

  handles(name: string): boolean {
    return name === WARMUP_XATTR;
  }

  set(ctx: RequestContext, value: Buffer): void {
    const v = value.toString().trim();
    if (v !== '1' && v !== 'add') throw new FsError(Errno.EINVAL, `${WARMUP_XATTR}: value must be 1`);
    const ino = ctx.nodeid;
    const running = this.jobs.get(ino);
    if (running?.state === 'running') return;
    const job: Job = { state: 'running', files: 0, filesDone: 0, bytes: 0, bytesDone: 0 };
    this.jobs.set(ino, job);
    this.run(ino, job).then(
      () => { job.state = 'done'; },
      (err: unknown) => {
        job.state = 'failed';
        job.error = String(err);
        log.warn({ ino, err: String(err) }, 'warmup failed');
      },
    );
  }

  get(ino: number): Buffer {
    const j = this.jobs.get(ino);
    if (!j) return Buffer.from('idle 0/0 0/0');
    return Buffer.from(`${j.state} ${j.filesDone}/${j.files} ${j.bytesDone}/${j.bytes}${j.error ? ` ${j.error}` : ''}`);
  }

  private async run(ino: number, job: Job): Promise<void> {
    const files: Attr[] = [];
    await this.collect(ino, files);
    job.files = files.length;
    job.bytes = files.reduce((s, a) => s + a.size, 0);
    for (const a of files) {
      if (this.closed) throw new Error('unmounting');
      await this.fetchFile(a);
      job.filesDone++;
      job.bytesDone += a.size;
    }
  }

  /** Prefetches one file's chunks (also used by `kurve warmup` through the xattr). */
  async fetchFile(attr: Attr): Promise<void> {
    const data = this.kfs.dataPath;
    const st = data.ensure(attr.ino);
    await data.revalidate(st, attr);
    await data.fetchAll(st);
    // Nothing holds it: keep the cached chunks (the LRU owns them) but close nothing else.
  }

  private async collect(ino: number, out: Attr[]): Promise<void> {
    const meta = this.kfs.meta;
    const attr = await meta.getattr(this.kfs.fsId, ino);
    const type = attr.mode & S_IFMT;
    if (type === S_IFREG) {
      out.push(attr);
      return;
    }
    if (type !== S_IFDIR) return;
    let cookie = 0;
    for (;;) {
      const r = await meta.readdir(this.kfs.fsId, ino, cookie, 512, true);
      for (const e of r.entries) {
        if (e.type === S_IFDIR) await this.collect(e.ino, out);
        else if (e.type === S_IFREG) out.push(e.attr ?? (await meta.getattr(this.kfs.fsId, e.ino)));
      }
      if (r.eof || r.entries.length === 0) break;
      cookie = r.entries[r.entries.length - 1].cookie;
    }
  }

  close(): void {
    this.closed = true;
  }
}
