#!/bin/sh
# Prints 1 when OpenBLAS's CBLAS header and library are installed (Debian: libopenblas-dev), else 0.
# With --include, prints the directory holding that cblas.h (for the compiler's include path).
# ANVIL_OPENBLAS=0 forces the build without it.
found=""
if [ "${ANVIL_OPENBLAS:-}" != "0" ]; then
  for inc in /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu /usr/include/openblas /usr/include /usr/local/include /usr/local/include/openblas; do
    if [ -f "$inc/cblas.h" ] && grep -q openblas_set_num_threads "$inc/cblas.h" 2>/dev/null; then
      if ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so ' || ls /usr/lib/*/libopenblas.so /usr/lib/libopenblas.so /usr/lib64/libopenblas.so /usr/local/lib/libopenblas.so >/dev/null 2>&1; then
        found="$inc"
        break
      fi
    fi
  done
fi
if [ "${1:-}" = "--include" ]; then
  echo "${found:-/usr/include}"
elif [ -n "$found" ]; then
  echo 1
else
  echo 0
fi
