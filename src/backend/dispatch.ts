// Kernel dispatch with the reference fallback, in one place. A fast backend implements a subset of
// the KernelTable and may decline dtype combinations through `supports`; anything it lacks or
// declines runs the pure-TypeScript reference kernel through `view()` (zero-copy typed arrays).
import type { Backend, DType, KernelName, KernelTable, View } from './backend.js';
import { referenceKernels } from './reference/kernels.js';

type Run<K extends KernelName> = (...args: Parameters<KernelTable[K]>) => void;

/**
 * Kernel `name` on `backend`: its fast kernel when it has one that supports the arguments' dtypes
 * and does not decline the call, else the reference kernel (which reads the buffers via `view()`).
 */
export function kernelFor<K extends KernelName>(backend: Backend, name: K): Run<K> {
  const fast = backend.kernels[name] as ((...a: Parameters<KernelTable[K]>) => void | false) | undefined;
  const ref = referenceKernels[name] as Run<K>;
  if (!fast) return ref;
  return (...args) => {
    if (backend.supports && !backend.supports(name, viewDTypes(args))) return ref(...args);
    if (fast(...args) === false) ref(...args);
  };
}

/** dtypes of the views among a kernel's arguments (nulls and scalars skipped), for `supports` */
export function viewDTypes(args: readonly unknown[]): DType[] {
  const out: DType[] = [];
  for (const a of args) if (a && typeof a === 'object' && 'buf' in a) out.push((a as View).buf.dtype);
  return out;
}
