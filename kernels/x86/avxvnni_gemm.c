/* avxvnni_gemm.c - avx2_gemm.c built for the avxvnni level: AVX2 with
 * AVX-VNNI (Intel cores since Alder Lake without AVX-512). X2_VNNI makes
 * the micro-kernels add vpdpbusd's int32 dot products where AVX2 adds
 * vpmaddubsw pair sums in int16 and widens them with vpmaddwd: the same
 * integer sums, so the same results bit for bit. Only the batch matmul
 * differs; generation (one token, bound by memory) and every other entry
 * are the AVX2 level's. Entry points: x2v_matmul_quant, x2v_matmul_packed. */
#define X2_VNNI 1
#include "avx2_gemm.c"
