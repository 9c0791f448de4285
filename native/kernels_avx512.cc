// The avx512 build of the kernels (flags in binding.gyp): 64-byte vectors, 12x32 GEMM register block.
#define VB 64
#define MR 12
#define NV 2
#define KNS k_avx512
#define KNAME "avx512"
#define KFN kernelsAvx512
#include "kernels.inc"
