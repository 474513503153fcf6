/**
 * Finds the native addon's file the way packages with prebuilt binaries do: node-gyp-build looks
 * in the package's native/ folder for a local build (native/build/Release, from `npm run
 * build:native` or a compile at install) and then for a prebuild that matches this platform, CPU
 * and Node (native/prebuilds/<platform>-<arch>/, made by prebuildify when the package is packed).
 * It only resolves the path; addon.ts loads the file and checks its ABI version.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { fileURLToPath } from 'node:url';

/** The part of node-gyp-build used here: the path of the build it would load from `dir`. */
interface NodeGypBuild {
  path(dir: string): string;
}

// Relative to this file: dist/src/io/ (compiled) first, then src/io/.
const NATIVE_DIR_CANDIDATES = ['../../../native/', '../../native/'];

/** The addon's file, or null with where it looked (for the message that says why it is not in use). */
export function locateNativeAddon(): { path: string; looked: null } | { path: null; looked: string } {
  const dirs = NATIVE_DIR_CANDIDATES.map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  const dir = dirs.find((d) => existsSync(`${d}binding.gyp`));
  if (dir === undefined) return { path: null, looked: `no native/binding.gyp at ${dirs.join(' or ')}` };
  const build = createRequire(import.meta.url)('node-gyp-build') as NodeGypBuild;
  try {
    return { path: build.path(dir), looked: null };
  } catch {
    return { path: null, looked: `${dir}build/Release/*.node, ${dir}prebuilds/${platform()}-${arch()}/*.node for this Node` };
  }
}
