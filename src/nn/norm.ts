// Norm layer from a NormConfig (LayerNorm with/without bias, or RMSNorm).
import type { Tensor } from '../tensor/tensor.js';
import type { NormConfig } from './config.js';
import { LayerNorm, RMSNorm } from './layers.js';
import type { Module } from './module.js';

export type Norm = Module & { forward(x: Tensor): Tensor };

export function makeNorm(dim: number, cfg: NormConfig): Norm {
  switch (cfg.kind) {
    case 'layernorm':
      return new LayerNorm(dim, { eps: cfg.eps, bias: cfg.bias });
    case 'rmsnorm':
      return cfg.unitOffset ? new RMSNorm(dim, cfg.eps, { unitOffset: true }) : new RMSNorm(dim, cfg.eps);
    default:
      return cfg satisfies never;
  }
}
