{
  # The native CPU backend (native/*.cc). Each CPU target's kernels are a static library compiled
  # with its own -m flags; the addon picks one at run time with cpuid, so one binary runs on any
  # x86-64 and the portable target alone builds elsewhere (arm64).
  'variables': {
    'kernel_cflags': ['-O3', '-std=gnu++17', '-ffp-contract=fast', '-fno-math-errno', '-fno-trapping-math', '-fPIC'],
  },
  'target_defaults': {
    'cflags!': ['-fno-exceptions', '-O2', '-O3'],
    'cflags_cc!': ['-fno-exceptions', '-O2'],
    'cflags_cc': ['<@(kernel_cflags)'],
    'xcode_settings': { 'GCC_ENABLE_CPP_EXCEPTIONS': 'YES', 'OTHER_CPLUSPLUSFLAGS': ['<@(kernel_cflags)'] },
  },
  'targets': [
    {
      'target_name': 'kernels_portable',
      'type': 'static_library',
      'sources': ['native/kernels_portable.cc'],
    },
    {
      'target_name': 'lineage_native',
      'sources': ['native/addon.cc', 'native/pool.cc'],
      'include_dirs': ["<!(node -p \"require('node-addon-api').include_dir\")"],
      'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS'],
      'cflags_cc': ['-fexceptions'],
      'libraries': ['-lpthread'],
      'dependencies': ['kernels_portable'],
      'conditions': [
        ['target_arch=="x64"', { 'dependencies': ['kernels_avx2', 'kernels_avx512'] }],
      ],
    },
  ],
  'conditions': [
    ['target_arch=="x64"', {
      'targets': [
        {
          'target_name': 'kernels_avx2',
          'type': 'static_library',
          'sources': ['native/kernels_avx2.cc'],
          'cflags_cc': ['-mavx2', '-mfma', '-mf16c'],
        },
        {
          'target_name': 'kernels_avx512',
          'type': 'static_library',
          'sources': ['native/kernels_avx512.cc'],
          'cflags_cc': ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx2', '-mfma', '-mf16c', '-mprefer-vector-width=512'],
        },
      ],
    }],
  ],
}
