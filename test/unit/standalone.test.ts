/**
 * The repository stands alone: someone who clones it has every document its files point to, and
 * no file carries a path of the machine it was written on. Reads the text files of the tree (src,
 * test, bench, fuzz, scripts, docs, native and the top-level documents; build output, installed
 * packages and binary files are skipped) and fails, naming file and line, when one
 *   - points into a sibling folder named shared next to the repository,
 *   - names an absolute path under /work, /root or /home,
 *   - names a Markdown document that exists nowhere in the repository.
 * The patterns are written so that this file does not match them itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder holding lanparty's package.json, found upwards from this file (dist/test/unit/). */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'lanparty') return dir;
    const up = path.dirname(dir);
    assert.notEqual(up, dir, 'no package.json of lanparty above this test');
    dir = up;
  }
}

const ROOT = repoRoot();
const ENTRIES = ['src', 'test', 'bench', 'fuzz', 'scripts', 'docs', 'native', 'README.md', 'RELIABILITY.md', 'package.json'];
/** Build output, installed packages and fuzzing findings: made on the machine, never committed. */
const SKIP_DIRS = new Set(['node_modules', 'dist', 'build', 'findings', '.git']);

function walk(rel: string): string[] {
  const abs = path.join(ROOT, rel);
  if (!fs.existsSync(abs)) return [];
  if (!fs.statSync(abs).isDirectory()) return [rel];
  return fs.readdirSync(abs, { withFileTypes: true })
    .filter((e) => !(e.isDirectory() && SKIP_DIRS.has(e.name)))
    .flatMap((e) => walk(path.join(rel, e.name)));
}

/** UTF-8 text of a file, or null for a binary one (a NUL byte in its first 8 KiB). */
function textOf(rel: string): string | null {
  const buf = fs.readFileSync(path.join(ROOT, rel));
  return buf.subarray(0, 8192).includes(0) ? null : buf.toString('utf8');
}

// A path starts where the previous character cannot belong to a word, a variable or a relative path.
const START = String.raw`(?<![\w.$~}\-])`;
const RULES: Array<{ re: RegExp; why: string }> = [
  { re: /\.\.\/shared\//, why: 'points into a shared folder outside the repository' },
  { re: new RegExp(START + String.raw`\/work\/`), why: 'absolute path under /work of the build machine' },
  { re: new RegExp(START + String.raw`\/(?:root|home)\/`), why: 'absolute path under /root or /home' },
];

const files = ENTRIES.flatMap(walk).sort();
const texts = new Map<string, string>();
for (const f of files) {
  const t = textOf(f);
  if (t !== null) texts.set(f, t);
}

test('the walk finds the tree (sanity)', () => {
  for (const f of ['README.md', 'package.json', path.join('src', 'switch', 'switch.ts'), path.join('test', 'unit', 'standalone.test.ts')]) {
    assert.ok(texts.has(f), `${f} was not read from ${ROOT}`);
  }
});

test('no file points outside the repository or names a path of the build machine', () => {
  const bad: string[] = [];
  for (const [f, text] of texts) {
    text.split('\n').forEach((line, i) => {
      for (const r of RULES) if (r.re.test(line)) bad.push(`${f}:${i + 1}: ${r.why}: ${line.trim().slice(0, 160)}`);
    });
  }
  assert.deepEqual(bad, [], `files that depend on things a clone does not have (documents belong in docs/):\n${bad.join('\n')}`);
});

test('every Markdown file a file names exists in the repository', () => {
  const have = new Set(files.filter((f) => f.endsWith('.md')).map((f) => path.basename(f)));
  const bad: string[] = [];
  for (const [f, text] of texts) {
    text.split('\n').forEach((line, i) => {
      for (const m of line.matchAll(/[\w./-]*?([\w-]+\.md)\b/g)) {
        if (!have.has(m[1])) bad.push(`${f}:${i + 1}: names ${m[0]}, which is not in the repository`);
      }
    });
  }
  assert.deepEqual(bad, [], `references to documents a clone does not have (add them under docs/ or point there):\n${bad.join('\n')}`);
});
