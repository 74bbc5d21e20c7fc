# Anvil's optional native NFU kernels. scripts/build-native.mjs runs node-gyp here; when the system
# has OpenBLAS (Debian: libopenblas-dev) the dense products use it, otherwise only the random parts
# are native. -ffp-contract=off keeps the random numbers bit-identical to the TypeScript reference
# (no fused multiply-adds); the loader also checks a few values against the reference at load time.
{
  "variables": {
    "anvil_openblas%": "<!(sh ./detect-openblas.sh)",
    "anvil_openblas_include%": "<!(sh ./detect-openblas.sh --include)"
  },
  "targets": [
    {
      "target_name": "anvil_nfu",
      "sources": ["anvil_nfu.cc"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wextra", "-Wno-psabi"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno", "-fno-trapping-math"]
      },
      "conditions": [
        ["anvil_openblas==1", {
          "defines": ["ANVIL_HAVE_OPENBLAS"],
          "include_dirs": ["<(anvil_openblas_include)"],
          "libraries": ["-lopenblas"]
        }]
      ]
    }
  ]
}
