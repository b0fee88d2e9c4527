// The only file that touches koffi: libbpf.so.1 and libc bindings. Opaque pointers are branded
// types here so the compiler keeps a bpf_map *from being passed where a bpf_program *is expected.
import koffi from 'koffi';

export type ObjectPtr = { readonly __brand: 'bpf_object' };
export type ProgramPtr = { readonly __brand: 'bpf_program' };
export type MapPtr = { readonly __brand: 'bpf_map' };
export type LinkPtr = { readonly __brand: 'bpf_link' };
/** Memory from koffi.alloc that libbpf may write after the call returns (verifier log buffers). */
export type NativeBuf = { readonly __brand: 'native_buf' };

export interface LibBpf {
  bpf_object__open_file(path: string, opts: null): ObjectPtr | null;
  bpf_object__load(obj: ObjectPtr): number;
  bpf_object__close(obj: ObjectPtr): void;
  bpf_object__name(obj: ObjectPtr): string;
  bpf_object__next_program(obj: ObjectPtr, prev: ProgramPtr | null): ProgramPtr | null;
  bpf_object__next_map(obj: ObjectPtr, prev: MapPtr | null): MapPtr | null;
  bpf_program__name(p: ProgramPtr): string;
  bpf_program__section_name(p: ProgramPtr): string;
  bpf_program__type(p: ProgramPtr): number;
  bpf_program__expected_attach_type(p: ProgramPtr): number;
  bpf_program__fd(p: ProgramPtr): number;
  bpf_program__set_log_buf(p: ProgramPtr, buf: NativeBuf, size: number): number;
  bpf_program__set_log_level(p: ProgramPtr, level: number): number;
  bpf_program__set_autoload(p: ProgramPtr, autoload: boolean): number;
  bpf_program__attach(p: ProgramPtr): LinkPtr | null;
  bpf_program__attach_cgroup(p: ProgramPtr, cgroupFd: number): LinkPtr | null;
  bpf_map__name(m: MapPtr): string;
  bpf_map__type(m: MapPtr): number;
  bpf_map__key_size(m: MapPtr): number;
  bpf_map__value_size(m: MapPtr): number;
  bpf_map__max_entries(m: MapPtr): number;
  bpf_map__map_flags(m: MapPtr): number;
  bpf_map__fd(m: MapPtr): number;
  bpf_map__is_internal(m: MapPtr): boolean;
  bpf_map__set_pin_path(m: MapPtr, path: string | null): number;
  bpf_link__pin(l: LinkPtr, path: string): number;
  bpf_link__unpin(l: LinkPtr): number;
  bpf_link__fd(l: LinkPtr): number;
  bpf_link__destroy(l: LinkPtr): number;
  bpf_link__open(path: string): LinkPtr | null;
  bpf_map_update_elem(fd: number, key: Buffer, value: Buffer, flags: bigint): number;
  bpf_map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  bpf_map_delete_elem(fd: number, key: Buffer): number;
  bpf_map_get_next_key(fd: number, key: Buffer | null, next: Buffer): number;
  bpf_obj_get(path: string): number;
  bpf_prog_get_fd_by_id(id: number): number;
  bpf_prog_get_next_id(start: number, next: number[]): number;
  bpf_obj_get_info_by_fd(fd: number, info: Buffer, len: number[]): number;
  libbpf_strerror(err: number, buf: Buffer, size: number): number;
  libbpf_num_possible_cpus(): number;
  libbpf_set_print(fn: null): unknown;
}

export interface LibC {
  mount(source: string, target: string, fstype: string, flags: number, data: string | null): number;
  close(fd: number): number;
}

let bpf: LibBpf | undefined;
let libc: LibC | undefined;
let loadError: Error | undefined;

function bind(): void {
  if (bpf || loadError) return;
  let lb: ReturnType<typeof koffi.load>;
  try {
    lb = koffi.load('libbpf.so.1');
  } catch (err) {
    loadError = new Error(`cannot load libbpf.so.1 (install libbpf1 / libbpf-dev): ${(err as Error).message}`);
    return;
  }
  try {
    // koffi type names are global to the native module, which test runners load once for several
    // module registries: a per-instance suffix keeps a second binding from colliding.
    const sfx = `_k${Math.random().toString(36).slice(2, 8)}`;
    for (const t of ['bpf_object', 'bpf_program', 'bpf_map', 'bpf_link']) koffi.opaque(t + sfx);
    const decls = [
      'bpf_object *bpf_object__open_file(const char *path, const void *opts)',
      'int bpf_object__load(bpf_object *obj)',
      'void bpf_object__close(bpf_object *obj)',
      'const char *bpf_object__name(bpf_object *obj)',
      'bpf_program *bpf_object__next_program(bpf_object *obj, bpf_program *prev)',
      'bpf_map *bpf_object__next_map(bpf_object *obj, bpf_map *prev)',
      'const char *bpf_program__name(bpf_program *p)',
      'const char *bpf_program__section_name(bpf_program *p)',
      'int bpf_program__type(bpf_program *p)',
      'int bpf_program__expected_attach_type(bpf_program *p)',
      'int bpf_program__fd(bpf_program *p)',
      'int bpf_program__set_log_buf(bpf_program *p, void *buf, size_t size)',
      'int bpf_program__set_log_level(bpf_program *p, uint32_t level)',
      'int bpf_program__set_autoload(bpf_program *p, bool autoload)',
      'bpf_link *bpf_program__attach(bpf_program *p)',
      'bpf_link *bpf_program__attach_cgroup(bpf_program *p, int cgroup_fd)',
      'const char *bpf_map__name(bpf_map *m)',
      'int bpf_map__type(bpf_map *m)',
      'uint32_t bpf_map__key_size(bpf_map *m)',
      'uint32_t bpf_map__value_size(bpf_map *m)',
      'uint32_t bpf_map__max_entries(bpf_map *m)',
      'uint32_t bpf_map__map_flags(bpf_map *m)',
      'int bpf_map__fd(bpf_map *m)',
      'bool bpf_map__is_internal(bpf_map *m)',
      'int bpf_map__set_pin_path(bpf_map *m, const char *path)',
      'int bpf_link__pin(bpf_link *l, const char *path)',
      'int bpf_link__unpin(bpf_link *l)',
      'int bpf_link__fd(bpf_link *l)',
      'int bpf_link__destroy(bpf_link *l)',
      'bpf_link *bpf_link__open(const char *path)',
      'int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)',
      'int bpf_map_lookup_elem(int fd, const void *key, void *value)',
      'int bpf_map_delete_elem(int fd, const void *key)',
      'int bpf_map_get_next_key(int fd, const void *key, void *next_key)',
      'int bpf_obj_get(const char *path)',
      'int bpf_prog_get_fd_by_id(uint32_t id)',
      'int bpf_prog_get_next_id(uint32_t start_id, _Out_ uint32_t *next_id)',
      'int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)',
      'int libbpf_strerror(int err, char *buf, size_t size)',
      'int libbpf_num_possible_cpus()',
      'void *libbpf_set_print(void *fn)',
    ];
    const out: Record<string, unknown> = {};
    for (const d of decls) {
      const name = /([A-Za-z0-9_]+)\(/.exec(d)![1];
      out[name] = lb.func(d.replace(/\b(bpf_object|bpf_program|bpf_map|bpf_link) \*/g, `$1${sfx} *`));
    }
    bpf = out as unknown as LibBpf;
    // libbpf's default printer writes warnings to stderr; we surface errors ourselves (the
    // verifier log through set_log_buf), so keep the CLI output clean unless asked.
    if (!(process.env.KURVE_TRACE ?? '').split(',').includes('libbpf')) bpf.libbpf_set_print(null);

    const lc = koffi.load('libc.so.6');
    libc = {
      mount: lc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
      close: lc.func('int close(int fd)'),
    } as unknown as LibC;
  } catch (err) {
    loadError = new Error(`cannot bind libbpf/libc functions: ${(err as Error).message}`);
  }
}

/** The libbpf bindings; throws a clear error when libbpf.so.1 is not installed. */
export function libbpf(): LibBpf {
  bind();
  if (loadError) throw loadError;
  return bpf!;
}

export function libC(): LibC {
  bind();
  if (loadError) throw loadError;
  return libc!;
}

/** errno of the last native call: read it right after a NULL/-1 return, before any other call. */
export function lastErrno(): number {
  return koffi.errno();
}

export function allocNative(size: number): NativeBuf {
  return koffi.alloc('char', size) as NativeBuf;
}
export function freeNative(buf: NativeBuf): void {
  koffi.free(buf);
}
/** Reads a NUL-terminated string of at most `size` bytes from native memory. */
export function readNativeString(buf: NativeBuf, size: number): string {
  const bytes = Buffer.from(koffi.view(buf, size));
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? size : end).toString('utf8');
}
export function clearNative(buf: NativeBuf, size: number): void {
  new Uint8Array(koffi.view(buf, size)).fill(0);
}

/** libbpf's text for an error code (it has its own codes above 4000, e.g. 4001 LIBBPF_ERRNO__FORMAT). */
export function bpfStrerror(err: number): string {
  const buf = Buffer.alloc(256);
  libbpf().libbpf_strerror(Math.abs(err), buf, buf.length);
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
}
