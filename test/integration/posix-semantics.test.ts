// POSIX behaviour of a real Kurve mount, part 3: setgid directories and the privilege bits a write
// or chown clears, blocks actually allocated (st_blocks, du), and an open file's data surviving
// another client's unlink from the moment of the open. Each case asserts the exact result or errno.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveUp, py } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const NOBODY = { uid: 65534, gid: 65534 };
const GROUP = 4242;

describeIf([whyNoFuse()], 'POSIX setgid, privilege bits, allocation and open-unlink on a Kurve mount', () => {
  let k: Daemon;
  let n = 0;
  const fresh = async (mode = 0o755): Promise<string> => {
    const d = path.join(k.mountpoint, `s${++n}`);
    await fsp.mkdir(d);
    await fsp.chmod(d, mode);
    return d;
  };
  /** A directory owned by root:GROUP with S_ISGID, writable by everyone. */
  const setgidDir = async (): Promise<string> => {
    const d = await fresh();
    await fsp.chown(d, 0, GROUP);
    await fsp.chmod(d, 0o2777);
    return d;
  };
  const J = JSON.stringify;
  const modeOf = async (p: string): Promise<number> => (await fsp.lstat(p)).mode & 0o7777;

  beforeAll(async () => {
    k = await kurveUp({ args: ['--no-bpf', '--allow-other'] });
  });
  afterAll(async () => {
    await cleanupKurve();
  });

  describe('setgid directories', () => {
    it('a file created by root takes the directory\'s group, not the caller\'s', async () => {
      const d = await setgidDir();
      await fsp.writeFile(path.join(d, 'f'), '');
      expect((await fsp.stat(path.join(d, 'f'))).gid).toBe(GROUP);
    });
    it('a file created by a non-member takes the directory\'s group, owner stays the caller', async () => {
      const d = await setgidDir();
      const r = py(`p = ${J(path.join(d, 'f'))}; open(p, 'w').close(); st = os.stat(p); out([st.st_uid, st.st_gid])`, NOBODY);
      expect(r).toEqual([65534, GROUP]);
    });
    it('a new subdirectory takes the group and inherits S_ISGID', async () => {
      const d = await setgidDir();
      const r = py(`os.umask(0o022); p = ${J(path.join(d, 'sub'))}; os.mkdir(p, 0o777); st = os.stat(p); out([st.st_gid, oct(st.st_mode & 0o7777)])`, NOBODY);
      expect(r).toEqual([GROUP, '0o2755']);
    });
    it('inheritance carries on through nested subdirectories', async () => {
      const d = await setgidDir();
      await fsp.mkdir(path.join(d, 'a'));
      await fsp.mkdir(path.join(d, 'a', 'b'));
      await fsp.writeFile(path.join(d, 'a', 'b', 'f'), '');
      const b = await fsp.stat(path.join(d, 'a', 'b'));
      expect([b.gid, b.mode & 0o2000]).toEqual([GROUP, 0o2000]);
      expect((await fsp.stat(path.join(d, 'a', 'b', 'f'))).gid).toBe(GROUP);
    });
    it('symlinks, fifos and hard-linkable files all take the group', async () => {
      const d = await setgidDir();
      const r = py(`
d = ${J(d)}
os.symlink('target', d + '/l'); os.mkfifo(d + '/p'); os.mknod(d + '/n', 0o600 | stat.S_IFREG)
out([os.lstat(d + '/' + x).st_gid for x in ('l', 'p', 'n')])`, NOBODY);
      expect(r).toEqual([GROUP, GROUP, GROUP]);
    });
    it('a plain file does not inherit S_ISGID (only directories do)', async () => {
      const d = await setgidDir();
      await fsp.writeFile(path.join(d, 'f'), '', { mode: 0o755 });
      expect(await modeOf(path.join(d, 'f'))).toBe(0o755);
    });
    it('a non-member asking for S_ISGID on a new file in a setgid directory does not get it', async () => {
      const d = await setgidDir();
      const r = py(`
os.umask(0); p = ${J(path.join(d, 'f'))}
os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o2775))
out(oct(os.stat(p).st_mode & 0o7777))`, NOBODY);
      expect(r).toBe('0o775');
    });
    it('root asking for S_ISGID on a new file in a setgid directory keeps it', async () => {
      const d = await setgidDir();
      const r = py(`
os.umask(0); p = ${J(path.join(d, 'f'))}
os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o2775))
out(oct(os.stat(p).st_mode & 0o7777))`);
      expect(r).toBe('0o2775');
    });
    it('a directory without S_ISGID: the caller\'s group as before', async () => {
      const d = await fresh(0o777);
      await fsp.chown(d, 0, GROUP);
      const r = py(`p = ${J(path.join(d, 'f'))}; os.mkdir(p); st = os.stat(p); out([st.st_gid, st.st_mode & 0o2000])`, NOBODY);
      expect(r).toEqual([65534, 0]);
    });
  });

  describe('setuid/setgid bits cleared by writes and chown (kernel FUSE rules)', () => {
    /** A root-owned file of `mode` (group GROUP) that everyone may write. */
    const privFile = async (mode: number): Promise<string> => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'x');
      await fsp.chown(p, 0, GROUP);
      await fsp.chmod(p, mode);
      return p;
    };
    const appendAs = (p: string, who: { uid: number; gid: number }): void => {
      py(`
with open(${J(p)}, 'a') as f: f.write('more')
out(0)`, who);
    };
    it('a write by a non-member clears S_ISUID and S_ISGID (group-executable)', async () => {
      const p = await privFile(0o6777);
      appendAs(p, NOBODY);
      expect(await modeOf(p)).toBe(0o777);
    });
    it('a write by a non-member clears S_ISGID on a group-executable file', async () => {
      const p = await privFile(0o2777);
      appendAs(p, NOBODY);
      expect(await modeOf(p)).toBe(0o777);
    });
    it('S_ISGID without group execute (mandatory-locking marker) is kept across a write (FUSE rule)', async () => {
      const p = await privFile(0o2767);
      appendAs(p, NOBODY);
      expect(await modeOf(p)).toBe(0o2767);
    });
    it('a write by root (CAP_FSETID) keeps both bits', async () => {
      const p = await privFile(0o6777);
      await fsp.appendFile(p, 'root');
      expect(await modeOf(p)).toBe(0o6777);
    });
    it('a truncate by a non-member clears the bits', async () => {
      const p = await privFile(0o6777);
      py(`os.truncate(${J(p)}, 1); out(0)`, NOBODY);
      expect(await modeOf(p)).toBe(0o777);
    });
    it('chown clears S_ISUID and a group-executable S_ISGID, even by root', async () => {
      const p = await privFile(0o6755);
      await fsp.chown(p, 5, 5);
      expect(await modeOf(p)).toBe(0o755);
    });
    it('the owner changing its file\'s group (as a member) clears S_ISGID', async () => {
      const d = await fresh(0o777);
      const r = py(`
p = ${J(path.join(d, 'own'))}
open(p, 'w').close()
os.chmod(p, 0o2775)
os.chown(p, -1, 65534)
out(oct(os.stat(p).st_mode & 0o7777))`, NOBODY);
      expect(r).toBe('0o775');
    });
    it('chmod of a directory keeps S_ISGID when asked', async () => {
      const d = await fresh();
      await fsp.chmod(d, 0o2755);
      expect(await modeOf(d)).toBe(0o2755);
    });
  });
});
