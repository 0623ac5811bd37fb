/* bench_kernels_main.c - `bench-kernels`: the kernel table of bench_kernels.c
 * on stdout (infer-bench --kernels prints the same). */
#include <stdio.h>

#include "bench.h"

#include "infer.h"

int main(void) { return bench_kernels(stdout, infer_default_threads(), NULL); }
