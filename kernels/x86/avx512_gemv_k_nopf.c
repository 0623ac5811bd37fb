/* avx512_gemv_k_nopf.c - avx512_gemv_k.c built without software prefetch (AMD's
 * hardware prefetcher does better alone; kernels_sw_prefetch()). */
#define X5_NO_PREFETCH
#include "avx512_gemv_k.c"
