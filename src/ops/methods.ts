// Tensor methods: thin aliases of the functional ops (`x.add(y)` === `add(x, y)`), installed on the
// Tensor prototype by the op layer so that src/tensor depends on nothing above it. The table is typed
// and the Tensor interface is derived from it, so a method exists in the types iff it is installed.
import { Tensor } from '../tensor/tensor.js';
import { METHODS, type OpMethods } from './method-table.js';

declare module '../tensor/tensor.js' {
  // eslint-disable-next-line @typescript-eslint/no-empty-interface
  interface Tensor extends OpMethods {}
}

for (const [name, fn] of Object.entries(METHODS)) {
  Object.defineProperty(Tensor.prototype, name, { value: fn, writable: true, configurable: true });
}
