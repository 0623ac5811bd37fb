/* avx512_gemv_k_l2.c - avx512_gemv_k.c built to prefetch far ahead into L2
 * (what AMD CPUs run; kernels_sw_prefetch()). */
#define X5_PREFETCH_L2
#include "avx512_gemv_k.c"
