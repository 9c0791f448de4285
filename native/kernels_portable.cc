// The portable build of the kernels (flags in binding.gyp): 16-byte vectors, 6x8 GEMM register block.
#define VB 16
#define MR 6
#define NV 2
#define KNS k_portable
#define KNAME "portable"
#define KFN kernelsPortable
#include "kernels.inc"
