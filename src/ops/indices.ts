// Index tensors validated on the host where their values are produced. An op that takes indices
// (indexSelect, embedding, scatterAdd) must reject out-of-range ones with a clear error, but checking a
// tensor means reading it back from the backend (wasm memory, a device) — per generated token, in the
// decode hot path. A tensor made by `indexTensor` was checked against its bound before upload, so those
// ops skip the read-back when the bound fits; every other index tensor (user-facing calls) keeps the
// checked path.
import type { Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from './creation.js';

/** exclusive upper bound every value of the tensor was checked against on the host */
const hostChecked = new WeakMap<Tensor, number>();

/**
 * an int32 tensor of host index values, each checked to lie in [0, bound); `what` names them in errors
 * (e.g. 'inputIds')
 */
export function indexTensor(
  values: Int32Array | readonly number[],
  bound: number,
  opts: { shape?: Shape; what?: string } = {},
): Tensor {
  const v = values instanceof Int32Array ? values : Int32Array.from(values);
  for (let i = 0; i < v.length; i++) {
    if (v[i]! < 0 || v[i]! >= bound || values[i] !== v[i])
      throw new Error(`${opts.what ?? 'indices'}: value ${values[i]} at position ${i} is outside [0, ${bound})`);
  }
  const t = tensor(v, { shape: opts.shape ?? [v.length], dtype: 'int32' });
  hostChecked.set(t, bound);
  return t;
}

/** the bound a tensor's values were checked against on the host, if any */
export function hostCheckedBound(t: Tensor): number | undefined {
  return hostChecked.get(t);
}

/** `to` holds the same values as `from` (a reshape): it inherits the host check */
export function inheritHostCheck(from: Tensor, to: Tensor): Tensor {
  const b = hostChecked.get(from);
  if (b !== undefined) hostChecked.set(to, b);
  return to;
}
