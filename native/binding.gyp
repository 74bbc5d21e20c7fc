# Anvil's optional native NFU kernels. scripts/build-native.mjs runs node-gyp here; when the system
# has OpenBLAS (Debian: libopenblas-dev) the dense products use it, otherwise only the random parts
# are native. -ffp-contract=off keeps the random numbers bit-identical to the TypeScript reference.
{
  "variables": {
    "anvil_openblas%": "<!(sh ./detect-openblas.sh)"
  },
  "targets": [
    {
      "target_name": "anvil_nfu",
      "sources": ["anvil_nfu.cc"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wextra"],
      "conditions": [
        ["anvil_openblas==1", {
          "defines": ["ANVIL_HAVE_OPENBLAS"],
          "libraries": ["-lopenblas"]
        }]
      ]
    }
  ]
}
