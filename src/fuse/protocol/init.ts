// INIT negotiation: which protocol features Kurve asks the kernel for. Only what is implemented:
// every flag here changes what the kernel sends, and a flag we cannot honour is a silent bug.
import { Errno } from '../../common/errno';
import { moduleLogger } from '../../common/logger';
import { FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION, InitFlag } from './opcodes';
import type { FuseConnection } from './raw-fs';
import type { Request } from './request';
import type { FuseSession } from './session';
import { decodeInitIn, INIT_OUT_SIZE, IN_HEADER_SIZE, OUT_HEADER_SIZE, writeInitOut } from './wire';

const log = moduleLogger('fuse');
const PAGE = 4096;

/** The flags we want, given what the file system implements and what the mount asked for. */
export function wantedInitFlags(opts: { passthrough: boolean; readdirplus: boolean; readdirplusAlways?: boolean; killpriv?: boolean }): bigint {
  let f = InitFlag.ASYNC_READ // several READs of one file in flight (readahead)
    | InitFlag.BIG_WRITES // WRITEs up to max_write, not 4 KiB
    | InitFlag.MAX_PAGES // max_pages below is honoured (1 MiB requests)
    | InitFlag.PARALLEL_DIROPS // lookups and readdirs of one directory run concurrently
    | InitFlag.ATOMIC_O_TRUNC // OPEN carries O_TRUNC instead of a separate SETATTR
    | InitFlag.INIT_EXT; // flags2 exists (passthrough lives there)
  if (opts.readdirplus) f |= InitFlag.DO_READDIRPLUS | (opts.readdirplusAlways ? 0n : InitFlag.READDIRPLUS_AUTO);
  if (opts.passthrough) f |= InitFlag.PASSTHROUGH;
  if (opts.killpriv) f |= InitFlag.HANDLE_KILLPRIV_V2;
  return f;
}

export function negotiateInit(s: FuseSession, req: Request, buf: Buffer, n: number): void {
  const kin = decodeInitIn(buf, IN_HEADER_SIZE, n - IN_HEADER_SIZE);
  if (kin.major !== FUSE_KERNEL_VERSION) {
    log.error({ major: kin.major, minor: kin.minor }, 'unsupported FUSE protocol major version');
    s.replyError(req, Errno.EINVAL);
    void s.end('protocol mismatch');
    return;
  }
  const flags = wantedInitFlags({
    passthrough: s.opts.passthrough, readdirplus: s.fs.readdirplus !== undefined, readdirplusAlways: s.fs.readdirplusAlways === true, killpriv: s.fs.handlesKillpriv === true,
  }) & kin.flags;
  const passthrough = (flags & InitFlag.PASSTHROUGH) !== 0n;
  if (s.opts.passthrough && !passthrough) log.warn({ kernelFlags: kin.flags.toString(16) }, 'passthrough requested but the kernel does not offer it');
  const maxReadahead = Math.min(s.opts.maxReadahead, kin.maxReadahead);
  const b = s.scratch(INIT_OUT_SIZE);
  writeInitOut(b, OUT_HEADER_SIZE, {
    major: FUSE_KERNEL_VERSION,
    minor: Math.min(FUSE_KERNEL_MINOR_VERSION, kin.minor),
    maxReadahead,
    flags,
    maxBackground: 64,
    congestionThreshold: 48,
    maxWrite: s.opts.maxWrite,
    timeGran: 1,
    maxPages: Math.ceil(s.opts.maxWrite / PAGE),
    // Passthrough needs a stack depth of 1 or 2 (0 silently disables it: BACKING_OPEN gives EPERM).
    maxStackDepth: passthrough ? 1 : 0,
  });
  s.replyBuf(req, b, INIT_OUT_SIZE);
  const conn: FuseConnection = {
    kernelMajor: kin.major, kernelMinor: kin.minor, flags, passthrough, maxWrite: s.opts.maxWrite, maxReadahead,
    connectionId: s.connectionId, notify: s.notify, backing: s.backing,
  };
  log.debug({ kernel: `${kin.major}.${kin.minor}`, flags: flags.toString(16), passthrough }, 'FUSE INIT answered');
  let ready: void | Promise<void>;
  try {
    ready = s.fs.init?.(conn);
  } catch (err) {
    s.initFailed(err as Error);
    return;
  }
  Promise.resolve(ready).then(() => s.initDone(conn), (err: Error) => s.initFailed(err));
}
