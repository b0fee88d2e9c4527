// Where Kurve pins BPF objects (/sys/fs/bpf/kurve, or KURVE_BPF_PIN_DIR), and listing/removing them.
// Layout: <dir>/<object>/<map> for maps and <dir>/<object>/link-<name> for links.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureBpffs } from './features';

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/kurve';

export function pinDir(override?: string): string {
  return path.resolve(override ?? process.env.KURVE_BPF_PIN_DIR ?? DEFAULT_PIN_DIR);
}

/** The object's pin directory, created (and bpffs mounted) on demand. */
export function objectPinDir(object: string, root = pinDir()): string {
  ensureBpffs(root);
  const d = path.join(root, object);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

export function linkPinPath(objectDir: string, name: string): string {
  return path.join(objectDir, `link-${name}`);
}

/** Every pinned file under `root`, relative paths included, depth-first. */
export function listPins(root = pinDir()): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(root);
  return out.sort();
}

/**
 * Removes every pin under `root` and the directories. Links go first: unpinning a link detaches
 * its program; maps are freed once no program or fd holds them.
 */
export function removePins(root = pinDir()): string[] {
  const pins = listPins(root);
  const order = [...pins.filter((p) => path.basename(p).startsWith('link-')), ...pins.filter((p) => !path.basename(p).startsWith('link-'))];
  for (const p of order) fs.rmSync(p, { force: true });
  const dirs: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }) : []) {
      if (e.isDirectory()) walk(path.join(d, e.name));
    }
    dirs.push(d);
  };
  walk(root);
  for (const d of dirs) if (fs.existsSync(d)) fs.rmdirSync(d);
  return order;
}
