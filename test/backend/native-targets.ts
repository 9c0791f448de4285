// The native (addon, CPU target) pairs the backend suites run: every target the built addon runs on this
// CPU, and, where the CPU has no AVX-512, the avx512 target of the emulated build (build-emu/: the AVX-512
// source compiled for AVX2 with SIMDe's vpdpbusd, made by scripts/build-native-emu.mjs before `npm test`).
// Under CI the emulated build must be there (.ci/run installs SIMDe's headers): a skipped avx512 target would
// leave its source untested on every machine this project has.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { NativeAddon } from '../../src/backend/native/addon.js';
import { createNativeBackend, type NativeBackend } from '../../src/backend/native/backend.js';
import { loadNativeAddon } from '../../src/backend/native/addon-node.js';

export interface NativeTarget {
  /** 'portable' | 'avx2' | 'avx512' | 'avx512-emulated' */
  name: string;
  addon: NativeAddon;
  /** the addon's target to select */
  target: string;
}

const EMULATED = path.resolve('build-emu', 'lineage_native.node');

/** the emulated build, or why it is not loaded */
export function loadEmulatedAddon(): { addon: NativeAddon | null; why: string } {
  if (!existsSync(EMULATED)) return { addon: null, why: `${EMULATED} missing (scripts/build-native-emu.mjs)` };
  const addon = createRequire(import.meta.url)(EMULATED) as NativeAddon;
  if (!addon.info().emulated) return { addon: null, why: `${EMULATED} is not the emulated build` };
  return { addon, why: '' };
}

/** every native target to test here, best last */
export function nativeTargets(): NativeTarget[] {
  const { addon } = loadNativeAddon();
  if (!addon) return [];
  const i = addon.info();
  const list: NativeTarget[] = [{ name: 'portable', addon, target: 'portable' }];
  if (i.avx2) list.push({ name: 'avx2', addon, target: 'avx2' });
  if (i.avx512f) list.push({ name: 'avx512', addon, target: 'avx512' });
  else {
    const emu = loadEmulatedAddon().addon;
    if (emu) list.push({ name: 'avx512-emulated', addon: emu, target: 'avx512' });
  }
  return list;
}

/** a backend on one target */
export function nativeBackend(t: NativeTarget, threads: number, forceParallel = threads > 1): NativeBackend {
  return createNativeBackend(t.addon, { target: t.target, threads, forceParallel });
}
