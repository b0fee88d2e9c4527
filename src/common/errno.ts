// Linux errno values (x86_64/aarch64 generic) and the one mapping between service errors and errno.
import * as grpc from '@grpc/grpc-js';

export const Errno = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, EBADF: 9, EAGAIN: 11,
  ENOMEM: 12, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19, ENOTDIR: 20,
  EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ETXTBSY: 26, EFBIG: 27, ENOSPC: 28, ESPIPE: 29,
  EROFS: 30, EMLINK: 31, EPIPE: 32, ERANGE: 34, EDEADLK: 35, ENAMETOOLONG: 36, ENOLCK: 37,
  ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40, ENODATA: 61, ETIME: 62, EOVERFLOW: 75, EBADMSG: 74,
  EOPNOTSUPP: 95, ENOTSUP: 95, ECONNREFUSED: 111, ETIMEDOUT: 110, ESTALE: 116, EDQUOT: 122,
  ECANCELED: 125,
} as const;
export type ErrnoName = keyof typeof Errno;

const nameByCode = new Map<number, ErrnoName>();
for (const [name, code] of Object.entries(Errno) as [ErrnoName, number][]) {
  if (!nameByCode.has(code)) nameByCode.set(code, name);
}
export function errnoName(code: number): string {
  return nameByCode.get(code) ?? `E${code}`;
}

/** An error that carries a POSIX errno: thrown by services, returned as -errno by the FUSE session. */
export class FsError extends Error {
  override readonly name = 'FsError';
  constructor(readonly errno: number, message?: string) {
    super(message ? `${errnoName(errno)}: ${message}` : errnoName(errno));
  }
  get code(): string {
    return errnoName(this.errno);
  }
}

export function fsError(name: ErrnoName, message?: string): FsError {
  return new FsError(Errno[name], message);
}

/**
 * An FsError without a stack trace, for expected outcomes on hot paths (a lookup of a name that
 * does not exist yet precedes every create): capturing the stack is most of an Error's cost.
 */
export function expectedFsError(name: ErrnoName, message?: string): FsError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new FsError(Errno[name], message);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** errno for anything thrown: FsError keeps its own, gRPC status maps once, the rest is EIO. */
export function toErrno(err: unknown): number {
  if (err instanceof FsError) return err.errno;
  const e = err as { code?: unknown; errno?: unknown; metadata?: grpc.Metadata } | null;
  if (e && e.metadata instanceof grpc.Metadata) {
    const carried = e.metadata.get('kurve-errno')[0];
    if (typeof carried === 'string' && /^\d+$/.test(carried)) return Number(carried);
    return grpcStatusToErrno(Number(e.code));
  }
  if (e && typeof e.code === 'string' && e.code in Errno) return Errno[e.code as ErrnoName];
  return Errno.EIO;
}

export function grpcStatusToErrno(status: number): number {
  switch (status) {
    case grpc.status.NOT_FOUND: return Errno.ENOENT;
    case grpc.status.ALREADY_EXISTS: return Errno.EEXIST;
    case grpc.status.PERMISSION_DENIED: return Errno.EACCES;
    case grpc.status.UNAUTHENTICATED: return Errno.EACCES;
    case grpc.status.INVALID_ARGUMENT: return Errno.EINVAL;
    case grpc.status.OUT_OF_RANGE: return Errno.ERANGE;
    case grpc.status.RESOURCE_EXHAUSTED: return Errno.ENOSPC;
    case grpc.status.FAILED_PRECONDITION: return Errno.EINVAL;
    case grpc.status.UNIMPLEMENTED: return Errno.ENOSYS;
    case grpc.status.DEADLINE_EXCEEDED: return Errno.ETIMEDOUT;
    case grpc.status.ABORTED: return Errno.EAGAIN;
    default: return Errno.EIO;
  }
}

export function errnoToGrpcStatus(errno: number): grpc.status {
  switch (errno) {
    case Errno.ENOENT: case Errno.ENODATA: return grpc.status.NOT_FOUND;
    case Errno.EEXIST: return grpc.status.ALREADY_EXISTS;
    case Errno.EACCES: case Errno.EPERM: return grpc.status.PERMISSION_DENIED;
    case Errno.EINVAL: case Errno.ENAMETOOLONG: case Errno.E2BIG: return grpc.status.INVALID_ARGUMENT;
    case Errno.ERANGE: return grpc.status.OUT_OF_RANGE;
    case Errno.ENOSPC: case Errno.EDQUOT: return grpc.status.RESOURCE_EXHAUSTED;
    case Errno.ENOSYS: return grpc.status.UNIMPLEMENTED;
    case Errno.ETIMEDOUT: return grpc.status.DEADLINE_EXCEEDED;
    case Errno.EAGAIN: return grpc.status.ABORTED;
    case Errno.EIO: return grpc.status.INTERNAL;
    default: return grpc.status.FAILED_PRECONDITION;
  }
}
