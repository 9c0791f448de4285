// The avx512 build of the kernels (flags in binding.gyp): 64-byte vectors, 12x32 GEMM register block.
// scripts/build-native-emu.mjs also compiles this file with AVX2 flags and LINEAGE_EMULATE_AVX512, for tests on
// CPUs without AVX-512: the same source (64-byte vectors, 12x32 block, VNNI dots through SIMDe) runs there.
#define VB 64
#define MR 12
#define NV 2
#define KNS k_avx512
#define KNAME "avx512"
#define KFN kernelsAvx512
#include "kernels.inc"
