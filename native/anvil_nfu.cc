// Anvil's native NFU kernels (Node-API, ABI-stable): dense products through the system BLAS
// (OpenBLAS when it was found at build time) and vector loops for the random parts of the sketches
// — Philox4x32-10 words, Box–Muller normals, the sparse sign scatter.
//
// Every random number here is bit-identical to the TypeScript reference in
// nfu-kernels/rng/philox.ts: the generator uses only +, −, ×, ÷ and √ in the reference's order, and
// this file is compiled with -ffp-contract=off (no fused multiply-adds) and without -ffast-math, so
// the vector clones give the same bits as the scalar reference. The sparse sign scatter adds
// `scale·a` to Z row by row in the reference's order, so it matches the WebAssembly kernel too.
//
// The depot's bulk I/O also uses two helpers at the end of this file: crc32Runs (block CRC-32s in
// the libuv thread pool), keepHeap (a C heap that keeps the memory it frees) and populate (fresh
// memory faulted in by one call instead of one fault per page).
//
// Inputs are typed arrays owned by JavaScript; every length and stride is checked before any
// memory is touched, and a bad call throws a RangeError/TypeError without writing anything.

#include <node_api.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <memory>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <climits>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>
#define ANVIL_HAVE_PREAD 1
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define ANVIL_CRC_CLMUL 1
#endif

// Node's own zlib (its headers ship with Node and the node binary exports the symbols): the same
// CRC-32 as zlib.crc32 in JavaScript, bit for bit.
#include <zlib.h>

#ifdef ANVIL_HAVE_OPENBLAS
#include <cblas.h>
#endif

// Hot loops get AVX-512 and AVX2 clones on x86-64, chosen at load time (ifunc); elsewhere one build.
#if defined(__x86_64__) && defined(__linux__)
#define ANVIL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ANVIL_CLONES
#endif

namespace {

// ---------------------------------------------------------------------------------------------
// Philox4x32-10 and the deterministic Box–Muller transform

constexpr uint32_t M0 = 0xD2511F53u;
constexpr uint32_t M1 = 0xCD9E8D57u;
constexpr uint32_t W0 = 0x9E3779B9u;
constexpr uint32_t W1 = 0xBB67AE85u;

struct Words {
  uint32_t w[4];
};

inline Words philox(uint64_t ctr, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  uint32_t x0 = static_cast<uint32_t>(ctr);
  uint32_t x1 = static_cast<uint32_t>(ctr >> 32);
  uint32_t x2 = c2;
  uint32_t x3 = c3;
#pragma GCC unroll 10
  for (int r = 0; r < 10; r++) {
    const uint64_t p0 = static_cast<uint64_t>(M0) * x0;
    const uint64_t p1 = static_cast<uint64_t>(M1) * x2;
    const uint32_t y0 = static_cast<uint32_t>(p1 >> 32) ^ x1 ^ k0;
    const uint32_t y2 = static_cast<uint32_t>(p0 >> 32) ^ x3 ^ k1;
    x1 = static_cast<uint32_t>(p1);
    x3 = static_cast<uint32_t>(p0);
    x0 = y0;
    x2 = y2;
    k0 += W0;
    k1 += W1;
  }
  return Words{{x0, x1, x2, x3}};
}

// The constants are the exact doubles of the reference (shortest round-trip decimals).
constexpr double ATANH[12] = {1,
                              0.3333333333333333,
                              0.2,
                              0.14285714285714285,
                              0.1111111111111111,
                              0.09090909090909091,
                              0.07692307692307693,
                              0.06666666666666667,
                              0.058823529411764705,
                              0.05263157894736842,
                              0.047619047619047616,
                              0.043478260869565216};
constexpr double SIN[10] = {1,
                            -0.16666666666666666,
                            0.008333333333333333,
                            -0.0001984126984126984,
                            0.0000027557319223985893,
                            -2.505210838544172e-8,
                            1.6059043836821613e-10,
                            -7.647163731819816e-13,
                            2.8114572543455206e-15,
                            -8.22063524662433e-18};
constexpr double COS[10] = {1,
                            -0.5,
                            0.041666666666666664,
                            -0.001388888888888889,
                            0.0000248015873015873,
                            -2.755731922398589e-7,
                            2.08767569878681e-9,
                            -1.1470745597729725e-11,
                            4.779477332387385e-14,
                            -1.5619206968586225e-16};
constexpr double LN2 = 0.6931471805599453;
constexpr double SQRT2 = 1.4142135623730951;
constexpr double HALF_PI = 1.5707963267948966;
constexpr double TWO_POW_M53 = 1.0 / 9007199254740992.0;

inline double uniform53(uint32_t a, uint32_t b) {
  return (static_cast<double>(static_cast<int32_t>(a >> 5)) * 67108864.0 +
          static_cast<double>(static_cast<int32_t>(b >> 6))) *
         TWO_POW_M53;
}

constexpr size_t CHUNK = 256;  // pairs generated per pass, in three vector loops over lane arrays

// `count` (≤ CHUNK) pairs of normals from counters ctr, ctr+1, … into out[0 .. 2·count). The three
// phases (Philox words; r = √(−2 ln u1); the turn's cosine and sine) are separate loops over
// arrays with no branches, so GCC vectorizes each of them in every clone.
ANVIL_CLONES void gen_pairs(uint64_t ctr, size_t count,
                                                                             uint32_t c2, uint32_t c3,
                                                                             uint32_t k0, uint32_t k1,
                                                                             double* __restrict out) {
  uint32_t a0[CHUNK], a1[CHUNK], a2[CHUNK], a3[CHUNK];
  double rr[CHUNK];
  for (size_t i = 0; i < count; i++) {
    const Words w = philox(ctr + i, c2, c3, k0, k1);
    a0[i] = w.w[0];
    a1[i] = w.w[1];
    a2[i] = w.w[2];
    a3[i] = w.w[3];
  }
  // r = √(−2 ln u1), u1 = 1 − U(a0, a1) in (0, 1] (always a normal double, ≥ 2⁻⁵³):
  // u1 = 2ᵉ·m with m in [√½, √2) exactly, ln m = 2·atanh(s), s = (m − 1)/(m + 1).
  for (size_t i = 0; i < count; i++) {
    const double x = 1 - uniform53(a0[i], a1[i]);
    uint64_t bits;
    std::memcpy(&bits, &x, 8);
    double e = static_cast<double>(static_cast<int32_t>(static_cast<uint32_t>(bits >> 52))) - 1023;
    const uint64_t mbits = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
    double m;
    std::memcpy(&m, &mbits, 8);
    const bool big = m > SQRT2;
    m = big ? m * 0.5 : m;
    e = big ? e + 1 : e;
    const double f = m - 1;  // exact (Sterbenz)
    const double s = f / (2 + f);
    const double z = s * s;
    double p = ATANH[11];
#pragma GCC unroll 11
    for (int j = 10; j >= 0; j--) p = p * z + ATANH[j];
    rr[i] = std::sqrt(-2 * (e * LN2 + 2 * s * p));
  }
  // (cos 2πu2, sin 2πu2): u2·4 = q + f exactly, f in [−½, ½], x = f·π/2; the quadrant q swaps
  // and negates (cos x, sin x).
  for (size_t i = 0; i < count; i++) {
    const double t = uniform53(a2[i], a3[i]) * 4;
    int32_t q = static_cast<int32_t>(t);  // t in [0, 4): truncation is floor
    double f = t - static_cast<double>(q);
    const bool up = f > 0.5;
    f = up ? f - 1 : f;
    q = up ? q + 1 : q;
    const double x = f * HALF_PI;
    const double z = x * x;
    double sp = SIN[9];
#pragma GCC unroll 9
    for (int j = 8; j >= 0; j--) sp = sp * z + SIN[j];
    double cp = COS[9];
#pragma GCC unroll 9
    for (int j = 8; j >= 0; j--) cp = cp * z + COS[j];
    const double sn = x * sp;
    const int32_t odd = q & 1;
    const double c0 = odd ? sn : cp;
    const double s0 = odd ? cp : sn;
    const int32_t quad = q & 3;
    const double c = ((quad ^ (quad >> 1)) & 1) ? -c0 : c0;  // quadrants 1, 2
    const double s = (quad >> 1) ? -s0 : s0;                 // quadrants 2, 3
    out[2 * i] = rr[i] * c;
    out[2 * i + 1] = rr[i] * s;
  }
}

// Philox words of counter `ctr` for n consecutive blocks g0, g0+1, … (mod 2³²) of one stream:
// lane i's four words go to out[4i … 4i+3]. One vector loop over the lanes.
ANVIL_CLONES void philox_rows(uint32_t g0, size_t n, uint64_t ctr, uint32_t stream, uint32_t k0, uint32_t k1,
                              uint32_t* __restrict out) {
  for (size_t i = 0; i < n; i++) {
    const Words w = philox(ctr, g0 + static_cast<uint32_t>(i), stream, k0, k1);
    out[4 * i] = w.w[0];
    out[4 * i + 1] = w.w[1];
    out[4 * i + 2] = w.w[2];
    out[4 * i + 3] = w.w[3];
  }
}

// Normals number first … first+n−1 of stream (k0, k1, c2 = block, c3 = stream), as the reference's
// `normals`: counter i gives variates 2i (cosine) and 2i+1 (sine).
template <typename T>
void normals_into(uint32_t k0, uint32_t k1, uint32_t stream, uint32_t block, uint64_t first, size_t n, T* out) {
  double buf[2 * CHUNK];
  uint64_t ctr = first / 2;
  size_t skip = static_cast<size_t>(first % 2);
  size_t o = 0;
  while (o < n) {
    const size_t want = n - o + skip;
    const size_t pairs = std::min(CHUNK, (want + 1) / 2);
    gen_pairs(ctr, pairs, block, stream, k0, k1, buf);
    const size_t avail = std::min(2 * pairs - skip, n - o);
    for (size_t j = 0; j < avail; j++) out[o + j] = static_cast<T>(buf[skip + j]);
    o += avail;
    ctr += pairs;
    skip = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Sparse sign embedding: global row g of A is added, scaled by ±1/√s, to s distinct rows of Z; the
// targets and signs are the words of stream (seed, stream, g) in order, with rejection of repeats.

// The scatter runs panel by panel: the targets and scales of PANEL rows are drawn first, then the
// panel's rows are added to Z one column tile at a time, the tile of the A row held in registers
// while it is added to each of its s target rows. Every element of Z receives the reference's
// additions `z + s·a` (a product, then a sum: no fused multiply-add) in row order, so the bytes
// match the row-by-row reference exactly.
constexpr size_t PANEL = 64;

inline double widen(double v) { return v; }
inline double widen(float v) { return static_cast<double>(v); }

// Columns [j0, j1) of the panel's rows, in plain C++ (the tail, and CPUs without AVX2).
template <typename T>
void scatter_cols(const T* A, size_t n, size_t cols, size_t j0, size_t j1, const uint32_t* tg, const double* sc,
                  uint32_t nnz, double* Z) {
  for (size_t i = 0; i < n; i++) {
    const T* a = A + i * cols;
    for (uint32_t q = 0; q < nnz; q++) {
      double* z = Z + static_cast<size_t>(tg[i * nnz + q]) * cols;
      const double f = sc[i * nnz + q];
      for (size_t j = j0; j < j1; j++) z[j] += f * widen(a[j]);
    }
  }
}

#if defined(__x86_64__) && defined(__linux__)
#define ANVIL_X86 1

// One tile routine for both vector widths, written with GCC vector types: a vector of L doubles
// (L = 8 → zmm, L = 4 → ymm in the AVX-512 / AVX2 callers it is inlined into). The A tile of
// 16 vectors stays in registers while it is added to each target row.
template <size_t L>
struct Vec;
template <>
struct Vec<8> {
  typedef double d __attribute__((vector_size(64)));
  typedef float f __attribute__((vector_size(32)));
};
template <>
struct Vec<4> {
  typedef double d __attribute__((vector_size(32)));
  typedef float f __attribute__((vector_size(16)));
};
template <size_t L>
using vdouble = typename Vec<L>::d;

template <size_t L>
inline __attribute__((always_inline)) vdouble<L> loadv(const double* p) {
  vdouble<L> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <size_t L>
inline __attribute__((always_inline)) vdouble<L> loadv(const float* p) {
  typename Vec<L>::f v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, vdouble<L>);
}

// Full tiles of 16·L columns; returns how many columns they covered (the caller does the tail).
template <size_t L, typename T>
inline __attribute__((always_inline)) size_t scatter_tiles(const T* A, size_t n, size_t cols, const uint32_t* tg,
                                                           const double* sc, uint32_t nnz, double* Z) {
  constexpr size_t V = 16;  // vectors per tile
  constexpr size_t TW = V * L;
  const size_t full = cols - cols % TW;
  for (size_t j0 = 0; j0 < full; j0 += TW) {
    for (size_t i = 0; i < n; i++) {
      const T* a = A + i * cols + j0;
      vdouble<L> av[V];
      for (size_t u = 0; u < V; u++) av[u] = loadv<L>(a + L * u);
      for (uint32_t q = 0; q < nnz; q++) {
        double* z = Z + static_cast<size_t>(tg[i * nnz + q]) * cols + j0;
        const double f = sc[i * nnz + q];
        for (size_t u = 0; u < V; u++) {
          vdouble<L> zv = loadv<L>(z + L * u);
          zv = zv + f * av[u];  // a product, then a sum (-ffp-contract=off)
          std::memcpy(z + L * u, &zv, sizeof zv);
        }
      }
    }
  }
  return full;
}

template <typename T>
__attribute__((target("avx512f"))) size_t scatter_avx512(const T* A, size_t n, size_t cols, const uint32_t* tg,
                                                         const double* sc, uint32_t nnz, double* Z) {
  return scatter_tiles<8>(A, n, cols, tg, sc, nnz, Z);
}

template <typename T>
__attribute__((target("avx2"))) size_t scatter_avx2(const T* A, size_t n, size_t cols, const uint32_t* tg,
                                                    const double* sc, uint32_t nnz, double* Z) {
  return scatter_tiles<4>(A, n, cols, tg, sc, nnz, Z);
}
#endif

enum class Simd { avx512, avx2, none };

Simd simd_level() {
#ifdef ANVIL_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Simd::avx512;
  if (__builtin_cpu_supports("avx2")) return Simd::avx2;
#endif
  return Simd::none;
}

// The scatter's vector level; useIsa() may lower it (tests run every path on one machine).
std::atomic<Simd> SIMD{simd_level()};

template <typename T>
void scatter_panel(const T* A, size_t n, size_t cols, const uint32_t* tg, const double* sc, uint32_t nnz, double* Z) {
  size_t done = 0;
#ifdef ANVIL_X86
  const Simd level = SIMD.load(std::memory_order_relaxed);
  if (level == Simd::avx512) done = scatter_avx512(A, n, cols, tg, sc, nnz, Z);
  else if (level == Simd::avx2) done = scatter_avx2(A, n, cols, tg, sc, nnz, Z);
#endif
  if (done < cols) scatter_cols(A, n, cols, done, cols, tg, sc, nnz, Z);
}

template <typename T>
void sparse_sign(const T* A, size_t rows, size_t cols, uint32_t k, uint32_t nnz, uint32_t k0, uint32_t k1,
                 uint32_t stream, uint64_t row_offset, double* Z) {
  const double scale = 1 / std::sqrt(static_cast<double>(nnz));
  // word % k without a division (Lemire, Kaser & Kurz, "Faster remainder by direct computation",
  // 2019): exact for every 32-bit word and divisor.
  const uint64_t kinv = UINT64_C(0xFFFFFFFFFFFFFFFF) / k + 1;
  uint64_t scale_bits;
  std::memcpy(&scale_bits, &scale, 8);
  std::vector<uint32_t> tg(PANEL * nnz);
  std::vector<double> sc(PANEL * nnz);
  // The first PRE counters of every row of a panel are drawn in vector loops; a row needing more
  // (nnz > 4·PRE − a few, or many repeats) continues with scalar draws.
  constexpr uint64_t PRE = 3;
  std::vector<uint32_t> pre(PRE * PANEL * 4);
  for (size_t r0 = 0; r0 < rows; r0 += PANEL) {
    const size_t n = std::min(PANEL, rows - r0);
    const uint32_t g0 = static_cast<uint32_t>(row_offset + r0);
    for (uint64_t c = 0; c < PRE; c++) philox_rows(g0, n, c, stream, k0, k1, pre.data() + c * PANEL * 4);
    for (size_t i = 0; i < n; i++) {
      const uint32_t g = static_cast<uint32_t>(row_offset + r0 + i);
      uint32_t* targets = tg.data() + i * nnz;
      uint64_t ctr = 0;
      Words w{};
      int next = 4;
      uint32_t got = 0;
      while (got < nnz) {
        if (next == 4) {
          if (ctr < PRE) {
            const uint32_t* p = pre.data() + (ctr * PANEL + i) * 4;
            w = Words{{p[0], p[1], p[2], p[3]}};
            ctr++;
          } else {
            w = philox(ctr++, g, stream, k0, k1);
          }
          next = 0;
        }
        const uint32_t word = w.w[next++];
        const uint32_t t = k == 1 ? 0 : static_cast<uint32_t>((static_cast<unsigned __int128>(kinv * word) * k) >> 64);
        bool dup = false;
        for (uint32_t q = 0; q < got; q++) dup = dup || targets[q] == t;
        if (dup) continue;
        targets[got] = t;
        // ±scale by the word's top bit, without a branch (the sign is a coin flip)
        const uint64_t signed_bits = scale_bits | (static_cast<uint64_t>(word >> 31) << 63);
        std::memcpy(&sc[i * nnz + got], &signed_bits, 8);
        got++;
      }
    }
    scatter_panel(A + r0 * cols, n, cols, tg.data(), sc.data(), nnz, Z);
  }
}

// ---------------------------------------------------------------------------------------------
// Node-API plumbing

struct Fail {};  // thrown after an exception is pending in JS

void check(napi_env env, napi_status st) {
  if (st == napi_ok) return;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "ANVIL_NATIVE", "Node-API call failed");
  throw Fail{};
}

[[noreturn]] void range_error(napi_env env, const std::string& msg) {
  napi_throw_range_error(env, "ANVIL_NATIVE_RANGE", msg.c_str());
  throw Fail{};
}

[[noreturn]] void type_error(napi_env env, const std::string& msg) {
  napi_throw_type_error(env, "ANVIL_NATIVE_TYPE", msg.c_str());
  throw Fail{};
}

struct Args {
  napi_env env;
  size_t argc = 16;
  napi_value argv[16];
  Args(napi_env e, napi_callback_info info, size_t need) : env(e) {
    check(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    if (argc < need) type_error(env, "expected " + std::to_string(need) + " arguments");
  }
  double num(size_t i) {
    double v;
    if (napi_get_value_double(env, argv[i], &v) != napi_ok) type_error(env, "argument " + std::to_string(i) + " must be a number");
    return v;
  }
  // A non-negative integer below 2^53 (or `max`).
  uint64_t count(size_t i, double max = 9007199254740991.0) {
    const double v = num(i);
    if (!(v >= 0 && v <= max && std::floor(v) == v))
      range_error(env, "argument " + std::to_string(i) + " must be an integer from 0 to " + std::to_string(static_cast<uint64_t>(max)));
    return static_cast<uint64_t>(v);
  }
  uint32_t u32(size_t i) { return static_cast<uint32_t>(count(i, 4294967295.0)); }
  bool flag(size_t i) {
    bool v;
    if (napi_get_value_bool(env, argv[i], &v) != napi_ok) type_error(env, "argument " + std::to_string(i) + " must be a boolean");
    return v;
  }
  struct Typed {
    napi_typedarray_type type;
    size_t length;
    void* data;
  };
  Typed typed(size_t i) {
    bool is = false;
    check(env, napi_is_typedarray(env, argv[i], &is));
    if (!is) type_error(env, "argument " + std::to_string(i) + " must be a typed array");
    Typed t{};
    napi_value ab;
    size_t off;
    check(env, napi_get_typedarray_info(env, argv[i], &t.type, &t.length, &t.data, &ab, &off));
    if (t.type != napi_float64_array && t.type != napi_float32_array)
      type_error(env, "argument " + std::to_string(i) + " must be a Float64Array or Float32Array");
    return t;
  }
  Typed f64(size_t i) {
    Typed t = typed(i);
    if (t.type != napi_float64_array) type_error(env, "argument " + std::to_string(i) + " must be a Float64Array");
    return t;
  }
};

template <typename F>
napi_value guarded(napi_env env, F&& body) {
  try {
    return body();
  } catch (const Fail&) {
    return nullptr;
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, "ANVIL_NATIVE_MEMORY", "out of memory");
    return nullptr;
  } catch (...) {
    napi_throw_error(env, "ANVIL_NATIVE", "internal error in the native kernels");
    return nullptr;
  }
}

napi_value undefined_value(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// Elements a row-major r×c operand with leading dimension ld spans.
uint64_t span(uint64_t r, uint64_t c, uint64_t ld) { return r == 0 || c == 0 ? 0 : (r - 1) * ld + c; }

const char* isa() { return SIMD == Simd::avx512 ? "avx512f" : SIMD == Simd::avx2 ? "avx2" : "default"; }

// info() → { blas: string | null, isa: string }
napi_value Info(napi_env env, napi_callback_info) {
  return guarded(env, [&]() {
    napi_value obj, blas, cpu;
    check(env, napi_create_object(env, &obj));
#ifdef ANVIL_HAVE_OPENBLAS
    check(env, napi_create_string_utf8(env, openblas_get_config(), NAPI_AUTO_LENGTH, &blas));
#else
    check(env, napi_get_null(env, &blas));
#endif
    check(env, napi_create_string_utf8(env, isa(), NAPI_AUTO_LENGTH, &cpu));
    check(env, napi_set_named_property(env, obj, "blas", blas));
    check(env, napi_set_named_property(env, obj, "isa", cpu));
    return obj;
  });
}

// useIsa(name): the sparse sign scatter uses at most this vector level ("avx512f", "avx2" or
// "default"; never more than the CPU has). For tests: it is process-wide. Returns the level in use.
napi_value UseIsa(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() {
    Args a(env, info, 1);
    char name[16] = {0};
    size_t len = 0;
    if (napi_get_value_string_utf8(env, a.argv[0], name, sizeof name, &len) != napi_ok)
      type_error(env, "argument 0 must be a string");
    const std::string want(name, len);
    const Simd best = simd_level();
    Simd level;
    if (want == "avx512f") level = Simd::avx512;
    else if (want == "avx2") level = Simd::avx2;
    else if (want == "default") level = Simd::none;
    else type_error(env, "the level must be \"avx512f\", \"avx2\" or \"default\"");
    SIMD = static_cast<int>(level) < static_cast<int>(best) ? best : level;
    napi_value out;
    check(env, napi_create_string_utf8(env, isa(), NAPI_AUTO_LENGTH, &out));
    return out;
  });
}

// setBlasThreads(n): threads each BLAS call may use (the depot runs one per worker).
napi_value SetBlasThreads(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() {
    Args a(env, info, 1);
    const uint32_t n = static_cast<uint32_t>(a.count(0, 256));
#ifdef ANVIL_HAVE_OPENBLAS
    openblas_set_num_threads(n < 1 ? 1 : static_cast<int>(n));
#else
    (void)n;
#endif
    return undefined_value(env);
  });
}

// gemm(transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc): C = op(A)·op(B) + beta·C, row-major,
// all three Float64Array or all three Float32Array.
napi_value Gemm(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() {
    Args a(env, info, 12);
#ifndef ANVIL_HAVE_OPENBLAS
    napi_throw_error(env, "ANVIL_NATIVE_NO_BLAS", "this build has no BLAS");
    return static_cast<napi_value>(nullptr);
#else
    const bool ta = a.flag(0), tb = a.flag(1);
    const double lim = 2147483647.0;
    const uint64_t M = a.count(2, lim), N = a.count(3, lim), K = a.count(4, lim);
    const Args::Typed A = a.typed(5), B = a.typed(7), C = a.typed(10);
    const uint64_t lda = a.count(6, lim), ldb = a.count(8, lim), ldc = a.count(11, lim);
    const double beta = a.num(9);
    if (A.type != B.type || A.type != C.type) type_error(env, "A, B and C must have one element type");
    const uint64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    if (lda < std::max<uint64_t>(ac, 1) || ldb < std::max<uint64_t>(bc, 1) || ldc < std::max<uint64_t>(N, 1))
      range_error(env, "a leading dimension is smaller than its operand's row");
    if (span(ar, ac, lda) > A.length || span(br, bc, ldb) > B.length || span(M, N, ldc) > C.length)
      range_error(env, "an operand is larger than its array");
    if (M == 0 || N == 0) return undefined_value(env);
    const auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    if (A.type == napi_float64_array)
      cblas_dgemm(CblasRowMajor, TA, TB, (int)M, (int)N, (int)K, 1.0, static_cast<const double*>(A.data), (int)lda,
                  static_cast<const double*>(B.data), (int)ldb, beta, static_cast<double*>(C.data), (int)ldc);
    else
      cblas_sgemm(CblasRowMajor, TA, TB, (int)M, (int)N, (int)K, 1.0f, static_cast<const float*>(A.data), (int)lda,
                  static_cast<const float*>(B.data), (int)ldb, static_cast<float>(beta), static_cast<float*>(C.data),
                  (int)ldc);
    return undefined_value(env);
#endif
  });
}

// syrk(N, K, A, lda, beta, C, ldc): C = AᵀA + beta·C for A (K×N, row-major), the full N×N square
// (computed in the upper triangle and mirrored). A and C of one element type.
napi_value Syrk(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() {
    Args a(env, info, 7);
#ifndef ANVIL_HAVE_OPENBLAS
    napi_throw_error(env, "ANVIL_NATIVE_NO_BLAS", "this build has no BLAS");
    return static_cast<napi_value>(nullptr);
#else
    const double lim = 2147483647.0;
    const uint64_t N = a.count(0, lim), K = a.count(1, lim);
    const Args::Typed A = a.typed(2), C = a.typed(5);
    const uint64_t lda = a.count(3, lim), ldc = a.count(6, lim);
    const double beta = a.num(4);
    if (A.type != C.type) type_error(env, "A and C must have one element type");
    if (lda < std::max<uint64_t>(N, 1) || ldc < std::max<uint64_t>(N, 1))
      range_error(env, "a leading dimension is smaller than its operand's row");
    if (span(K, N, lda) > A.length || span(N, N, ldc) > C.length) range_error(env, "an operand is larger than its array");
    if (N == 0) return undefined_value(env);
    if (A.type == napi_float64_array) {
      double* c = static_cast<double*>(C.data);
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)N, (int)K, 1.0, static_cast<const double*>(A.data),
                  (int)lda, beta, c, (int)ldc);
      for (uint64_t i = 0; i < N; i++)
        for (uint64_t j = 0; j < i; j++) c[i * ldc + j] = c[j * ldc + i];
    } else {
      float* c = static_cast<float*>(C.data);
      cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)N, (int)K, 1.0f, static_cast<const float*>(A.data),
                  (int)lda, static_cast<float>(beta), c, (int)ldc);
      for (uint64_t i = 0; i < N; i++)
        for (uint64_t j = 0; j < i; j++) c[i * ldc + j] = c[j * ldc + i];
    }
    return undefined_value(env);
#endif
  });
}

// normals(k0, k1, stream, block, first, out): out.length normals of stream (key, stream, block)
// starting at variate `first` (rounded to f32 for a Float32Array).
napi_value Normals(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() {
    Args a(env, info, 6);
    const uint32_t k0 = a.u32(0), k1 = a.u32(1), stream = a.u32(2), block = a.u32(3);
    const uint64_t first = a.count(4);
    const Args::Typed out = a.typed(5);
    if (out.type == napi_float64_array)
      normals_into(k0, k1, stream, block, first, out.length, static_cast<double*>(out.data));
    else
      normals_into(k0, k1, stream, block, first, out.length, static_cast<float*>(out.data));
    return undefined_value(env);
  });
}

// normalRows(k0, k1, stream, block0, rows, k, out): row i of out (rows×k) is variates 0…k−1 of
// block (block0 + i) mod 2³² — the Ω rows of the left Gaussian sketch.
napi_value NormalRows(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() {
    Args a(env, info, 7);
    const uint32_t k0 = a.u32(0), k1 = a.u32(1), stream = a.u32(2);
    const uint64_t block0 = a.count(3), rows = a.count(4), k = a.count(5, 2147483647.0);
    const Args::Typed out = a.typed(6);
    if (k != 0 && rows > out.length / k) range_error(env, "rows·k is larger than the output array");
    for (uint64_t i = 0; i < rows; i++) {
      const uint32_t block = static_cast<uint32_t>(block0 + i);
      if (out.type == napi_float64_array)
        normals_into(k0, k1, stream, block, 0, k, static_cast<double*>(out.data) + i * k);
      else
        normals_into(k0, k1, stream, block, 0, k, static_cast<float*>(out.data) + i * k);
    }
    return undefined_value(env);
  });
}

// sparseSign(A, rows, cols, k, s, k0, k1, stream, rowOffset, Z): Z (k×cols, Float64Array) += S·A for
// the row block A (rows×cols, f64 or f32) whose first row is global row `rowOffset`.
napi_value SparseSign(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() {
    Args a(env, info, 10);
    const Args::Typed A = a.typed(0);
    const uint64_t rows = a.count(1), cols = a.count(2);
    const uint32_t k = a.u32(3), s = a.u32(4), k0 = a.u32(5), k1 = a.u32(6), stream = a.u32(7);
    const uint64_t row_offset = a.count(8);
    const Args::Typed Z = a.f64(9);
    if (k == 0 || s == 0 || s > k) range_error(env, "need 1 ≤ s ≤ k");
    if (cols != 0 && rows > A.length / cols) range_error(env, "rows·cols is larger than A");
    if (cols != 0 && k > Z.length / cols) range_error(env, "k·cols is larger than Z");
    if (A.type == napi_float64_array)
      sparse_sign(static_cast<const double*>(A.data), rows, cols, k, s, k0, k1, stream, row_offset,
                  static_cast<double*>(Z.data));
    else
      sparse_sign(static_cast<const float*>(A.data), rows, cols, k, s, k0, k1, stream, row_offset,
                  static_cast<double*>(Z.data));
    return undefined_value(env);
  });
}

// keepHeap(trimBytes, topPadBytes) → boolean: the C heap keeps up to trimBytes of freed memory at
// its top instead of giving it back to the system, and grows by topPadBytes more than asked. A
// depot frees and allocates socket buffers at the rate bytes arrive; returned memory comes back as
// fresh pages that fault in one 4 KiB page at a time. False where the C library has no such knob
// (not glibc) or refused it.
napi_value KeepHeap(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() {
    Args a(env, info, 2);
    const uint64_t trim = a.count(0, 2147483647.0), pad = a.count(1, 2147483647.0);
    bool ok = false;
#if defined(__GLIBC__)
    ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim)) == 1 && mallopt(M_TOP_PAD, static_cast<int>(pad)) == 1;
#else
    (void)trim;
    (void)pad;
#endif
    napi_value out;
    check(env, napi_get_boolean(env, ok, &out));
    return out;
  });
}

// populate(bytes) → boolean: faults in the pages that lie wholly inside `bytes` (a Uint8Array,
// shared memory or not) in one call, writable, without touching their contents (Linux ≥ 5.14:
// madvise MADV_POPULATE_WRITE). On a VM each first touch of a page otherwise costs a fault of its
// own; populating the same pages takes about a third less time. False where the system has no
// such call (the pages then fault in on first touch, as before).
napi_value Populate(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() {
    Args a(env, info, 1);
    bool is = false;
    check(env, napi_is_typedarray(env, a.argv[0], &is));
    if (!is) type_error(env, "argument 0 must be a Uint8Array");
    napi_typedarray_type type;
    size_t length = 0, off = 0;
    void* data = nullptr;
    napi_value ab;
    check(env, napi_get_typedarray_info(env, a.argv[0], &type, &length, &data, &ab, &off));
    if (type != napi_uint8_array) type_error(env, "argument 0 must be a Uint8Array");
    bool ok = false;
#if defined(__linux__)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
    const long page = sysconf(_SC_PAGESIZE);
    if (page > 0 && data != nullptr) {
      const uintptr_t p = static_cast<uintptr_t>(page);
      const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
      const uintptr_t first = (begin + p - 1) & ~(p - 1);
      const uintptr_t last = (begin + length) & ~(p - 1);
      // Interrupted by a signal or short of memory for a moment: tried again (populating pages
      // already in is cheap), a few times at most, so a passing failure does not read as "no such
      // call here".
      for (int attempt = 0; last > first && attempt < 8 && !ok; attempt++) {
        ok = madvise(reinterpret_cast<void*>(first), last - first, MADV_POPULATE_WRITE) == 0;
        if (!ok && errno != EINTR && errno != EAGAIN) break;
      }
    }
#else
    (void)length;
    (void)data;
#endif
    napi_value out;
    check(env, napi_get_boolean(env, ok, &out));
    return out;
  });
}

// CRC-32 (zlib's, bit for bit) by carry-less multiplication where the CPU has it: Node's zlib
// computes it from tables at about 4 GB/s, which made the checksums a fifth of a disk depot's CPU
// under bulk reads. Four 128-bit lanes of the message are folded forward 512 bits at a time (or,
// with VPCLMULQDQ, sixteen lanes 2048 bits at a time), then into one lane, 128 bits at a time; the
// last lane is reduced by zlib (it is a 16-byte message whose CRC, from a zero register, is the
// CRC of everything folded into it), and so are lengths below 64 bytes and the tail past the last
// whole 16 bytes.
//
// Bits are taken as zlib takes them (reflected: bit 0 of the first byte is the highest power). A
// 64-bit half h of a lane times the constant fold_const(e) gives, as a 128-bit lane, h·x^(e+1)
// mod P's residue class; so a lane's high-power half moves n bits on with fold_const(n + 63) and
// its low-power half with fold_const(n − 1). The constants are computed here, not tabled, and the
// whole path is checked against zlib once before it is used (crc32_fast falls back to the narrower
// path, then to zlib, if a check fails or the CPU lacks the instructions).

// x^e mod P, P = x^32 + 0x04C11DB7's terms (bit d = the coefficient of x^d).
uint32_t xpow_mod_p(unsigned e) {
  uint64_t r = 1;
  for (unsigned i = 0; i < e; i++) {
    r <<= 1;
    if (r & 0x100000000ull) r ^= 0x104C11DB7ull;
  }
  return static_cast<uint32_t>(r);
}

uint32_t reflect32(uint32_t v) {
  uint32_t r = 0;
  for (int i = 0; i < 32; i++)
    if ((v >> i) & 1u) r |= 1u << (31 - i);
  return r;
}

// x^e mod P as a reflected 64-bit multiplier (bit j = the coefficient of x^(63−j)).
uint64_t fold_const(unsigned e) { return static_cast<uint64_t>(reflect32(xpow_mod_p(e))) << 32; }

#ifdef ANVIL_CRC_CLMUL
// The two multipliers that move a 128-bit lane n bits on: its high-power half's, its low-power half's.
struct Fold {
  uint64_t hi, lo;
};

Fold fold_by(unsigned n) { return Fold{fold_const(n + 63), fold_const(n - 1)}; }

struct FoldConsts {
  Fold by2048, by512, by384, by256, by128;
};

const FoldConsts& fold_consts() {
  static const FoldConsts k{fold_by(2048), fold_by(512), fold_by(384), fold_by(256), fold_by(128)};
  return k;
}

// The 128-bit multiplier of f (low half: the high-power half's multiplier).
__attribute__((target("sse2"))) inline __m128i lane_const(const Fold& f) {
  return _mm_set_epi64x(static_cast<long long>(f.lo), static_cast<long long>(f.hi));
}

// Lane x moved on by the multiplier k (see lane_const), plus the next lane d.
#define ANVIL_FOLD(x, k, d) \
  _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128((x), (k), 0x00), _mm_clmulepi64_si128((x), (k), 0x11)), (d))

// Requires n >= 64.
__attribute__((target("pclmul,sse2"))) uint32_t crc32_clmul(uint32_t crc, const unsigned char* p, size_t n) {
  const FoldConsts& c = fold_consts();
  const __m128i k4 = lane_const(c.by512);
  const __m128i k1 = lane_const(c.by128);
  auto load = [](const unsigned char* q) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)); };
  // zlib's register is the complement of its CRC; it is added to the message's first 4 bytes.
  __m128i x0 = _mm_xor_si128(load(p), _mm_cvtsi32_si128(static_cast<int>(~crc)));
  __m128i x1 = load(p + 16), x2 = load(p + 32), x3 = load(p + 48);
  p += 64;
  n -= 64;
  for (; n >= 64; p += 64, n -= 64) {
    x0 = ANVIL_FOLD(x0, k4, load(p));
    x1 = ANVIL_FOLD(x1, k4, load(p + 16));
    x2 = ANVIL_FOLD(x2, k4, load(p + 32));
    x3 = ANVIL_FOLD(x3, k4, load(p + 48));
  }
  __m128i x = ANVIL_FOLD(x0, k1, x1);
  x = ANVIL_FOLD(x, k1, x2);
  x = ANVIL_FOLD(x, k1, x3);
  for (; n >= 16; p += 16, n -= 16) x = ANVIL_FOLD(x, k1, load(p));
  alignas(16) unsigned char lane[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(lane), x);
  const uLong folded = crc32_z(0xFFFFFFFFul, lane, 16);  // from a zero register
  return static_cast<uint32_t>(crc32_z(folded, p, n));
}

// The same with 512-bit registers (VPCLMULQDQ): sixteen lanes folded forward 2048 bits at a time,
// then into four (512 bits at a time), then into one (each moved on to the last), then as above.
#define ANVIL_WIDE __attribute__((target("avx512f,vpclmulqdq,pclmul,sse2")))

ANVIL_WIDE inline __m512i wide_const(const Fold& f) {
  const long long hi = static_cast<long long>(f.hi), lo = static_cast<long long>(f.lo);
  return _mm512_set_epi64(lo, hi, lo, hi, lo, hi, lo, hi);
}

ANVIL_WIDE inline __m512i wide_fold(__m512i x, __m512i k, __m512i d) {
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11), d, 0x96);
}

ANVIL_WIDE inline __m512i wide_load(const unsigned char* q) { return _mm512_loadu_si512(reinterpret_cast<const void*>(q)); }

ANVIL_WIDE inline __m128i lane_fold(__m128i x, const Fold& f, __m128i d) { return ANVIL_FOLD(x, lane_const(f), d); }

// Requires n >= 256.
ANVIL_WIDE uint32_t crc32_vclmul(uint32_t crc, const unsigned char* p, size_t n) {
  const FoldConsts& c = fold_consts();
  const __m512i k2048 = wide_const(c.by2048);
  const __m512i k512 = wide_const(c.by512);
  __m512i z0 = _mm512_xor_si512(wide_load(p), _mm512_zextsi128_si512(_mm_cvtsi32_si128(static_cast<int>(~crc))));
  __m512i z1 = wide_load(p + 64), z2 = wide_load(p + 128), z3 = wide_load(p + 192);
  p += 256;
  n -= 256;
  for (; n >= 256; p += 256, n -= 256) {
    z0 = wide_fold(z0, k2048, wide_load(p));
    z1 = wide_fold(z1, k2048, wide_load(p + 64));
    z2 = wide_fold(z2, k2048, wide_load(p + 128));
    z3 = wide_fold(z3, k2048, wide_load(p + 192));
  }
  __m512i z = wide_fold(z0, k512, z1);
  z = wide_fold(z, k512, z2);
  z = wide_fold(z, k512, z3);
  alignas(64) __m128i lanes[4];
  _mm512_store_si512(reinterpret_cast<void*>(lanes), z);
  __m128i x = lane_fold(lanes[0], c.by384, lanes[3]);
  x = lane_fold(lanes[1], c.by256, x);
  x = lane_fold(lanes[2], c.by128, x);
  for (; n >= 16; p += 16, n -= 16) x = lane_fold(x, c.by128, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  alignas(16) unsigned char lane[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(lane), x);
  const uLong folded = crc32_z(0xFFFFFFFFul, lane, 16);  // from a zero register
  return static_cast<uint32_t>(crc32_z(folded, p, n));
}
#undef ANVIL_WIDE
#undef ANVIL_FOLD

// Agrees with zlib on lengths that take every path of f (its wide loop, its narrow loop, the tail)
// from several starting CRCs and alignments.
template <typename F>
bool agrees_with_zlib(F f, size_t min) {
  std::vector<unsigned char> buf(70000);
  uint32_t s = 0x9E3779B9u;
  for (auto& b : buf) {
    s = s * 1664525u + 1013904223u;
    b = static_cast<unsigned char>(s >> 24);
  }
  const size_t lengths[] = {64, 65, 79, 80, 127, 128, 129, 191, 255, 256, 257, 271, 511, 512, 767, 1000, 4096, 65536, 65536 + 63, 69990};
  const uint32_t inits[] = {0u, 0xFFFFFFFFu, 0x12345678u};
  for (size_t n : lengths)
    for (size_t off : {size_t{0}, size_t{3}})
      for (uint32_t init : inits) {
        if (n < min || off + n > buf.size()) continue;
        const uint32_t want = static_cast<uint32_t>(crc32_z(init, buf.data() + off, n));
        if (f(init, buf.data() + off, n) != want) return false;
      }
  return true;
}

// Whether crc32_vclmul may be used: the CPU has it, and it agrees with zlib.
bool vclmul_usable() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq") &&
                         __builtin_cpu_supports("pclmul") && agrees_with_zlib(crc32_vclmul, 256);
  return ok;
}

// Whether crc32_clmul may be used: the CPU has it, and it agrees with zlib.
bool clmul_usable() {
  static const bool ok =
      __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse2") && agrees_with_zlib(crc32_clmul, 64);
  return ok;
}
#endif

// zlib's CRC-32 of p[0, n) continuing from crc, the fastest way this CPU allows.
uint32_t crc32_fast(uint32_t crc, const unsigned char* p, size_t n) {
#ifdef ANVIL_CRC_CLMUL
  if (n >= 256 && vclmul_usable()) return crc32_vclmul(crc, p, n);
  if (n >= 64 && clmul_usable()) return crc32_clmul(crc, p, n);
#endif
  return static_cast<uint32_t>(crc32_z(crc, p, n));
}

// crc32Runs(parts, runs, inits) → Promise<Uint32Array>: the bytes of `parts` (Uint8Arrays, in
// order, as one stream) cut into consecutive runs of `runs[i]` bytes (a Float64Array; their sum
// must not pass the parts' total); run i's CRC-32 continues from `inits[i]` (a Uint32Array of the
// same length). Computed in the libuv thread pool, off the event loop; the parts are held until
// it is done and must not change meanwhile.
// A typed array of type `want` (else a TypeError saying `what`): its data and its length in elements.
std::pair<void*, size_t> typed_array(napi_env env, napi_value v, napi_typedarray_type want, const std::string& what) {
  bool is = false;
  check(env, napi_is_typedarray(env, v, &is));
  napi_typedarray_type type;
  size_t len = 0, off = 0;
  void* d = nullptr;
  napi_value ab;
  if (is) check(env, napi_get_typedarray_info(env, v, &type, &len, &d, &ab, &off));
  if (!is || type != want) type_error(env, what);
  return {d, len};
}

// The run lengths in `lengths` (a Float64Array's data and length): whole counts whose sum stays
// within `limit`, else a RangeError (`past_end` when the sum passes it).
std::vector<uint64_t> run_lengths(napi_env env, const std::pair<void*, size_t>& lengths, uint64_t limit, const char* past_end) {
  std::vector<uint64_t> out;
  out.reserve(lengths.second);
  uint64_t sum = 0;
  for (size_t i = 0; i < lengths.second; i++) {
    const double v = static_cast<const double*>(lengths.first)[i];
    if (!(v >= 0 && v <= 9007199254740991.0 && std::floor(v) == v)) range_error(env, "a run length is not a count");
    sum += static_cast<uint64_t>(v);
    if (sum > limit) range_error(env, past_end);
    out.push_back(static_cast<uint64_t>(v));
  }
  return out;
}

// The parts of a byte stream and its runs, with each run's CRC-32 (its start value until computed):
// what crc32Runs and pwriteCrc32s take.
struct StreamRuns {
  std::vector<std::pair<const unsigned char*, size_t>> parts;
  std::vector<uint64_t> runs;
  std::vector<uint32_t> crcs;

  // Reads argument `pi` (an array of Uint8Arrays), then `ri` (run lengths, a Float64Array) and `ri + 1`
  // (start values, a Uint32Array of the same length); the runs must not pass the parts' total.
  void parse(napi_env env, Args& a, size_t pi, size_t ri) {
    bool is_array = false;
    const std::string parts_error = "argument " + std::to_string(pi) + " must be an array of Uint8Arrays";
    check(env, napi_is_array(env, a.argv[pi], &is_array));
    if (!is_array) type_error(env, parts_error);
    uint32_t nparts = 0;
    check(env, napi_get_array_length(env, a.argv[pi], &nparts));
    uint64_t total = 0;
    for (uint32_t i = 0; i < nparts; i++) {
      napi_value el;
      check(env, napi_get_element(env, a.argv[pi], i, &el));
      const auto d = typed_array(env, el, napi_uint8_array, parts_error);
      parts.emplace_back(static_cast<const unsigned char*>(d.first), d.second);
      total += d.second;
    }
    const auto lengths = typed_array(env, a.argv[ri], napi_float64_array, "argument " + std::to_string(ri) + " must be a Float64Array");
    const auto inits =
        typed_array(env, a.argv[ri + 1], napi_uint32_array, "argument " + std::to_string(ri + 1) + " must be a Uint32Array");
    if (lengths.second != inits.second) range_error(env, "runs and inits differ in length");
    runs = run_lengths(env, lengths, total, "the runs pass the end of the parts");
    crcs.assign(static_cast<const uint32_t*>(inits.first), static_cast<const uint32_t*>(inits.first) + inits.second);
  }

  // Continues each run's CRC-32 over its bytes (off the event loop).
  void compute() {
    size_t p = 0, at = 0;
    for (size_t r = 0; r < runs.size(); r++) {
      uint32_t c = crcs[r];
      uint64_t left = runs[r];
      while (left > 0) {
        while (at == parts[p].second) {
          p++;
          at = 0;
        }
        const size_t n = static_cast<size_t>(std::min<uint64_t>(left, parts[p].second - at));
        c = crc32_fast(c, parts[p].first + at, n);
        at += n;
        left -= n;
      }
      crcs[r] = c;
    }
  }

  // The CRCs as a new Uint32Array, or nullptr if it cannot be made.
  napi_value result(napi_env env) const {
    napi_value out = nullptr, ab;
    void* bytes = nullptr;
    if (napi_create_arraybuffer(env, crcs.size() * 4, &bytes, &ab) != napi_ok ||
        napi_create_typedarray(env, napi_uint32_array, crcs.size(), ab, 0, &out) != napi_ok)
      return nullptr;
    if (!crcs.empty()) std::memcpy(bytes, crcs.data(), crcs.size() * 4);
    return out;
  }
};

struct CrcWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  napi_ref parts_ref = nullptr;
  StreamRuns stream;
};

void CrcExecute(napi_env, void* data) { static_cast<CrcWork*>(data)->stream.compute(); }

void CrcComplete(napi_env env, napi_status status, void* data) {
  CrcWork* w = static_cast<CrcWork*>(data);
  napi_value out = status == napi_ok ? w->stream.result(env) : nullptr;
  if (out != nullptr) {
    napi_resolve_deferred(env, w->deferred, out);
  } else {
    napi_value msg, err;
    napi_create_string_utf8(env, "crc32Runs failed", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, nullptr, msg, &err);
    napi_reject_deferred(env, w->deferred, err);
  }
  napi_delete_reference(env, w->parts_ref);
  napi_delete_async_work(env, w->work);
  delete w;
}

napi_value Crc32Runs(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, 3);
    auto w = std::make_unique<CrcWork>();
    w->stream.parse(env, a, 0, 1);
    napi_value promise, name;
    check(env, napi_create_reference(env, a.argv[0], 1, &w->parts_ref));
    check(env, napi_create_promise(env, &w->deferred, &promise));
    check(env, napi_create_string_utf8(env, "anvil:crc32Runs", NAPI_AUTO_LENGTH, &name));
    check(env, napi_create_async_work(env, nullptr, name, CrcExecute, CrcComplete, w.get(), &w->work));
    check(env, napi_queue_async_work(env, w->work));
    w.release();
    return promise;
  });
}

#ifdef ANVIL_HAVE_PREAD
// preadCrc32s(fd, buf, position, runs, crcs) → Promise<number>: reads buf.length bytes of the file
// at `position` into `buf` (pread, again after a short read or an interrupt, until the end of the
// file), then the CRC-32 of each consecutive run of runs[i] bytes of `buf` (a Float64Array; their
// sum must not pass buf.length) into crcs[i] (a Uint32Array of the same length; a run the read did
// not reach gets 0). Resolves with the bytes read; rejects with the error's code (EIO, EBADF, …).
// One job in the libuv thread pool, so a read run costs one trip there, not two, and its bytes
// are checksummed while they are still in the cache. `buf` and `crcs` are held until it is done;
// `fd` must stay open meanwhile and `buf` must not be touched.
// Rejects `deferred` with an Error for errno `e` from `call`, as Node's fs would: code (EIO, ENOSPC, …),
// errno (negative) and message.
void reject_errno(napi_env env, napi_deferred deferred, int e, const char* call) {
  const char* name = uv_err_name(uv_translate_sys_error(e));
  napi_value code, msg, err, no;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  const std::string text = std::string(name) + ": " + std::strerror(e) + ", " + call;
  napi_create_string_utf8(env, text.c_str(), NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &err);
  napi_create_int32(env, -e, &no);
  napi_set_named_property(env, err, "errno", no);
  napi_reject_deferred(env, deferred, err);
}

struct PreadWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  napi_ref buf_ref = nullptr;
  napi_ref crcs_ref = nullptr;
  int fd = -1;
  unsigned char* buf = nullptr;
  size_t length = 0;
  int64_t position = 0;
  std::vector<uint64_t> runs;
  std::vector<uint32_t> crcs;
  uint32_t* crcs_out = nullptr;
  size_t got = 0;
  int error = 0;
};

void PreadExecute(napi_env, void* data) {
  PreadWork* w = static_cast<PreadWork*>(data);
  while (w->got < w->length) {
    const ssize_t r = pread(w->fd, w->buf + w->got, w->length - w->got, static_cast<off_t>(w->position + w->got));
    if (r < 0) {
      if (errno == EINTR) continue;
      w->error = errno;
      return;
    }
    if (r == 0) break;
    w->got += static_cast<size_t>(r);
  }
  size_t at = 0;
  for (size_t i = 0; i < w->runs.size() && at + w->runs[i] <= w->got; at += w->runs[i], i++)
    w->crcs[i] = crc32_fast(0, w->buf + at, w->runs[i]);
}

void PreadComplete(napi_env env, napi_status status, void* data) {
  PreadWork* w = static_cast<PreadWork*>(data);
  if (status == napi_ok && w->error == 0) {
    if (!w->crcs.empty()) std::memcpy(w->crcs_out, w->crcs.data(), w->crcs.size() * 4);
    napi_value out;
    napi_create_double(env, static_cast<double>(w->got), &out);
    napi_resolve_deferred(env, w->deferred, out);
  } else {
    reject_errno(env, w->deferred, w->error != 0 ? w->error : EIO, "pread");
  }
  napi_delete_reference(env, w->buf_ref);
  napi_delete_reference(env, w->crcs_ref);
  napi_delete_async_work(env, w->work);
  delete w;
}

napi_value PreadCrc32s(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, 5);
    auto w = std::make_unique<PreadWork>();
    w->fd = static_cast<int>(a.count(0, 2147483647.0));
    auto bytes = [&](size_t i, napi_typedarray_type want, const char* what) {
      return typed_array(env, a.argv[i], want, std::string("argument ") + std::to_string(i) + " must be a " + what);
    };
    const auto buf = bytes(1, napi_uint8_array, "Uint8Array");
    w->buf = static_cast<unsigned char*>(buf.first);
    w->length = buf.second;
    w->position = static_cast<int64_t>(a.count(2));
    const auto runs = bytes(3, napi_float64_array, "Float64Array");
    const auto crcs = bytes(4, napi_uint32_array, "Uint32Array");
    if (runs.second != crcs.second) range_error(env, "runs and crcs differ in length");
    w->runs = run_lengths(env, runs, w->length, "the runs pass the end of the buffer");
    w->crcs.assign(runs.second, 0);
    w->crcs_out = static_cast<uint32_t*>(crcs.second == 0 ? nullptr : crcs.first);
    napi_value promise, name;
    check(env, napi_create_reference(env, a.argv[1], 1, &w->buf_ref));
    check(env, napi_create_reference(env, a.argv[4], 1, &w->crcs_ref));
    check(env, napi_create_promise(env, &w->deferred, &promise));
    check(env, napi_create_string_utf8(env, "anvil:preadCrc32s", NAPI_AUTO_LENGTH, &name));
    check(env, napi_create_async_work(env, nullptr, name, PreadExecute, PreadComplete, w.get(), &w->work));
    check(env, napi_queue_async_work(env, w->work));
    w.release();
    return promise;
  });
}

// pwriteCrc32s(fd, parts, position, runs, inits, writeBack) → Promise<Uint32Array>: the CRC-32s of
// `parts` (Uint8Arrays, one stream) cut into runs, exactly as crc32Runs, and the parts written to
// the file at `position` (pwritev, again after a short write or an interrupt) in the same
// thread-pool job: a batch of a bulk write costs one trip there, not two, and is checksummed while
// it is still in the cache. With `writeBack` (Linux) the write-out of the range is started at once
// (sync_file_range, SYNC_FILE_RANGE_WRITE: not a sync, the caller still syncs), so the disk works
// while the rest of the body arrives. Rejects with the error's code (ENOSPC, EIO, …); the parts
// are held until it is done and must not change meanwhile; `fd` must stay open.
struct PwriteWork {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  napi_ref parts_ref = nullptr;
  int fd = -1;
  int64_t position = 0;
  bool write_back = false;
  StreamRuns stream;
  int error = 0;
  const char* call = "pwritev";
};

void PwriteExecute(napi_env, void* data) {
  PwriteWork* w = static_cast<PwriteWork*>(data);
  w->stream.compute();
  uint64_t total = 0;
  std::vector<struct iovec> iov;
  iov.reserve(w->stream.parts.size());
  for (const auto& part : w->stream.parts) {
    if (part.second == 0) continue;
    iov.push_back({const_cast<unsigned char*>(part.first), part.second});
    total += part.second;
  }
  size_t first = 0;
  uint64_t done = 0;
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    const ssize_t r = pwritev(w->fd, iov.data() + first, count, static_cast<off_t>(w->position + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      w->error = errno;
      return;
    }
    if (r == 0) {
      w->error = EIO;
      return;
    }
    done += static_cast<uint64_t>(r);
    size_t k = static_cast<size_t>(r);
    while (first < iov.size() && k >= iov[first].iov_len) {
      k -= iov[first].iov_len;
      first++;
    }
    if (k > 0) {
      iov[first].iov_base = static_cast<unsigned char*>(iov[first].iov_base) + k;
      iov[first].iov_len -= k;
    }
  }
#if defined(__linux__)
  if (w->write_back && total > 0 &&
      sync_file_range(w->fd, static_cast<off_t>(w->position), static_cast<off_t>(total), SYNC_FILE_RANGE_WRITE) != 0) {
    // Only a head start for the sync that follows; an error here is the sync's to report too.
    if (errno == EIO || errno == ENOSPC) {
      w->error = errno;
      w->call = "sync_file_range";
    }
  }
#endif
}

void PwriteComplete(napi_env env, napi_status status, void* data) {
  PwriteWork* w = static_cast<PwriteWork*>(data);
  napi_value out = status == napi_ok && w->error == 0 ? w->stream.result(env) : nullptr;
  if (out != nullptr) {
    napi_resolve_deferred(env, w->deferred, out);
  } else {
    reject_errno(env, w->deferred, w->error != 0 ? w->error : EIO, w->call);
  }
  napi_delete_reference(env, w->parts_ref);
  napi_delete_async_work(env, w->work);
  delete w;
}

napi_value PwriteCrc32s(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a(env, info, 6);
    auto w = std::make_unique<PwriteWork>();
    w->fd = static_cast<int>(a.count(0, 2147483647.0));
    w->stream.parse(env, a, 1, 3);
    w->position = static_cast<int64_t>(a.count(2));
    w->write_back = a.flag(5);
    napi_value promise, name;
    check(env, napi_create_reference(env, a.argv[1], 1, &w->parts_ref));
    check(env, napi_create_promise(env, &w->deferred, &promise));
    check(env, napi_create_string_utf8(env, "anvil:pwriteCrc32s", NAPI_AUTO_LENGTH, &name));
    check(env, napi_create_async_work(env, nullptr, name, PwriteExecute, PwriteComplete, w.get(), &w->work));
    check(env, napi_queue_async_work(env, w->work));
    w.release();
    return promise;
  });
}
#endif

}  // namespace

NAPI_MODULE_INIT() {
  const napi_property_descriptor props[] = {
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setBlasThreads", nullptr, SetBlasThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"useIsa", nullptr, UseIsa, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemm", nullptr, Gemm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"syrk", nullptr, Syrk, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"normals", nullptr, Normals, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"normalRows", nullptr, NormalRows, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sparseSign", nullptr, SparseSign, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"crc32Runs", nullptr, Crc32Runs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
#ifdef ANVIL_HAVE_PREAD
      {"preadCrc32s", nullptr, PreadCrc32s, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"pwriteCrc32s", nullptr, PwriteCrc32s, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
#endif
      {"keepHeap", nullptr, KeepHeap, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"populate", nullptr, Populate, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return nullptr;
  return exports;
}
