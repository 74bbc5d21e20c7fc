#!/bin/sh
# Prints 1 when OpenBLAS's CBLAS header and library are installed (Debian: libopenblas-dev), else 0.
# ANVIL_OPENBLAS=0 forces the build without it.
if [ "${ANVIL_OPENBLAS:-}" = "0" ]; then echo 0; exit 0; fi
for inc in /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu /usr/include/openblas /usr/include /usr/local/include; do
  if [ -f "$inc/cblas.h" ] && grep -q openblas_set_num_threads "$inc/cblas.h" 2>/dev/null; then
    if ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so ' || ls /usr/lib/*/libopenblas.so /usr/lib/libopenblas.so /usr/local/lib/libopenblas.so >/dev/null 2>&1; then
      echo 1; exit 0
    fi
  fi
done
echo 0
