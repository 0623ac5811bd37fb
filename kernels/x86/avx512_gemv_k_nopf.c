/* avx512_gemv_k_nopf.c - avx512_gemv_k.c built without software prefetch
 * (INFER_CPU_PREFETCH=0, and CPUs neither Intel nor AMD;
 * kernels_sw_prefetch()). */
#define X5_NO_PREFETCH
#include "avx512_gemv_k.c"
