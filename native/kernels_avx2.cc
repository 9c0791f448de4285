// The avx2 build of the kernels (flags in binding.gyp): 32-byte vectors, 6x16 GEMM register block.
#define VB 32
#define MR 6
#define NV 2
#define KNS k_avx2
#define KNAME "avx2"
#define KFN kernelsAvx2
#include "kernels.inc"
