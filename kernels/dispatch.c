/*
 * dispatch.c - choosing the kernel table once: the best level the CPU runs
 * (cpuid + xgetbv on x86-64, HWCAP on aarch64), or the one INFER_CPU names.
 * The reference table wraps kernels/ref and is always there.
 */
#include "dispatch.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer_gguf.h"
#include "ref/quants.h"
#include "util.h"

#if defined(__x86_64__)
#include <cpuid.h>
extern const kernel_table kernels_avx2;    /* kernels/x86/avx2_ops.c */
extern const kernel_table kernels_avxvnni; /* kernels/x86/avx2_ops.c */
extern const kernel_table kernels_avx512;  /* kernels/x86/avx512_ops.c */
#elif defined(__aarch64__)
#include <sys/auxv.h>
extern const kernel_table kernels_neon;   /* kernels/arm/neon.c */
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

/* ---- the reference table ------------------------------------------------------ */

static void ref_quantize_act(uint32_t act_type, const float *x, void *y, int64_t n) {
    infer_ref_quantize(act_type, x, y, n);
}

static void ref_silu_mul(float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void ref_add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static void ref_rms_norm(const float *x, const float *w, float *y, int64_t n, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)x[i] * (double)x[i];
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
}

const kernel_table kernels_ref = {
    .isa = INFER_ISA_REF,
    .name = "ref",
    .vec_dot_type = infer_ref_vec_dot_type,
    .quantize_act = ref_quantize_act,
    .matmul = infer_ref_matmul,
    .matmul_kn = infer_ref_matmul_kn,
    .dequantize = infer_ref_dequantize,
    .silu_mul = ref_silu_mul,
    .add = ref_add,
    .rms_norm = ref_rms_norm,
};

/* ---- softmax through the table's entries -------------------------------------------- */

/* Four floats: GCC/clang vector extensions, SSE2 or NEON on the builds'
 * baseline. The loops below do per value exactly what their scalar tails
 * do; only the max is taken in four lanes first (the same value: a max
 * does not depend on order, and a NaN is skipped by either compare). */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v4_store(float *p, v4f v) { memcpy(p, &v, sizeof v); }

/* s[j] *= scale for j < n; returns the largest result (-inf for none). */
static float scale_max(float *s, int64_t n, float scale) {
    v4f m = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    const v4f vs = {scale, scale, scale, scale};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const v4f v = v4_load(s + j) * vs;
        v4_store(s + j, v);
        const v4i gt = v > m;
        m = (v4f)((gt & (v4i)v) | (~gt & (v4i)m));
    }
    float mx = -INFINITY;
    for (int k = 0; k < 4; k++)
        if (m[k] > mx) mx = m[k];
    for (; j < n; j++) {
        s[j] *= scale;
        if (s[j] > mx) mx = s[j];
    }
    return mx;
}

/* s[j] *= a for j < n. */
static void scale_row(float *s, int64_t n, float a) {
    const v4f va = {a, a, a, a};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) v4_store(s + j, v4_load(s + j) * va);
    for (; j < n; j++) s[j] *= a;
}

double kernels_softmax_generic(const kernel_table *kt, float *x, int64_t n_valid, int64_t n, float scale,
                               uint32_t act_type, void *p, float *max) {
    const float mx = scale_max(x, n_valid, scale);
    double sum = 0.0;
    if (kt->exp_sum) {
        sum = kt->exp_sum(x, x, n_valid, mx);
    } else {
        for (int64_t j = 0; j < n_valid; j++) {
            x[j] = expf(x[j] - mx);
            sum += (double)x[j];
        }
    }
    const float inv = sum > 0.0 ? (float)(1.0 / sum) : 0.0f;
    scale_row(x, n_valid, inv);
    if (n > n_valid) memset(x + n_valid, 0, (size_t)(n - n_valid) * sizeof *x);
    kt->quantize_act(act_type, x, p, n);
    *max = mx;
    return sum;
}

double kernels_softmax(const kernel_table *kt, float *x, int64_t n_valid, int64_t n, float scale, uint32_t act_type,
                       void *p, float *max) {
    if (kt->softmax) return kt->softmax(x, n_valid, n, scale, act_type, p, max);
    return kernels_softmax_generic(kt, x, n_valid, n, scale, act_type, p, max);
}

/* Each side weighted by its share of the total, l e^(m - max) and
 * sb e^(mb - max) (one of the two exponents is 0), four floats at a time
 * as above; the arithmetic per value depends on nothing but the row. */
void kernels_softmax_merge(float *o, const float *ob, int64_t n, float *m, double *l, float mb, double sb) {
    if (sb == 0.0) return;
    const int later = mb > *m; /* the block holds the larger max */
    const double a = *l * (later ? (double)expf(*m - mb) : 1.0), b = sb * (later ? 1.0 : (double)expf(mb - *m));
    const float fa = (float)(a / (a + b)), fb = (float)(b / (a + b));
    const v4f va = {fa, fa, fa, fa}, vb = {fb, fb, fb, fb};
    int64_t d = 0;
    for (; d + 4 <= n; d += 4) v4_store(o + d, va * v4_load(o + d) + vb * v4_load(ob + d));
    for (; d < n; d++) o[d] = fa * o[d] + fb * ob[d];
    if (later) *m = mb;
    *l = a + b;
}

/* ---- what the machine runs ---------------------------------------------------------- */

int kernels_x86_supports(infer_isa isa, const kernels_x86_features *f) {
    const uint32_t c1 = f->leaf1_ecx, b7 = f->leaf7_ebx, c7 = f->leaf7_ecx;
    const int osxsave = (c1 >> 27) & 1, fma = (c1 >> 12) & 1, f16c = (c1 >> 29) & 1, avx = (c1 >> 28) & 1;
    const int avx2 = (b7 >> 5) & 1;
    /* The OS saves XMM and YMM state (XCR0 bits 1 and 2). */
    if (!osxsave || !avx || !fma || !f16c || !avx2 || (f->xcr0 & 0x6) != 0x6) return 0;
    if (isa == INFER_ISA_AVX2) return 1;
    if (isa == INFER_ISA_AVXVNNI) return (f->leaf7s1_eax >> 4) & 1;
    if (isa != INFER_ISA_AVX512) return 0;
    /* The AVX-512 kernels are built with F/BW/VL/DQ/VNNI and use vpdpbusd
     * throughout: a CPU without VNNI (Skylake-SP/X) runs the AVX2 level. */
    const int f512 = (b7 >> 16) & 1, dq = (b7 >> 17) & 1, bw = (b7 >> 30) & 1, vl = (b7 >> 31) & 1;
    const int vnni = (c7 >> 11) & 1;
    return f512 && dq && bw && vl && vnni && (f->xcr0 & 0xe6) == 0xe6; /* and opmask/ZMM state */
}

static int cpu_has(infer_isa isa) {
    switch (isa) {
    case INFER_ISA_REF: return 1;
#if defined(__x86_64__)
    case INFER_ISA_AVX2:
    case INFER_ISA_AVXVNNI:
    case INFER_ISA_AVX512: {
        kernels_x86_features f = {0};
        unsigned a, b, c, d;
        if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
        f.leaf1_ecx = c;
        /* xgetbv only where the OS enabled it (OSXSAVE). */
        if ((c >> 27) & 1) {
            unsigned xlo, xhi;
            __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
            f.xcr0 = (uint64_t)xhi << 32 | xlo;
        }
        if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
        f.leaf7_ebx = b;
        f.leaf7_ecx = c;
        if (a >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f.leaf7s1_eax = a; /* subleaf 1 exists */
        return kernels_x86_supports(isa, &f);
    }
#elif defined(__aarch64__)
    case INFER_ISA_NEON: return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#endif
    default: return 0;
    }
}

static const kernel_table *table_of(infer_isa isa) {
    switch (isa) {
    case INFER_ISA_REF: return &kernels_ref;
#if defined(__x86_64__)
    case INFER_ISA_AVX2: return &kernels_avx2;
    case INFER_ISA_AVXVNNI: return &kernels_avxvnni;
    case INFER_ISA_AVX512: return &kernels_avx512;
#elif defined(__aarch64__)
    case INFER_ISA_NEON: return &kernels_neon;
#endif
    default: return NULL;
    }
}

const kernel_table *kernels_for(infer_isa isa) {
    if ((unsigned)isa >= INFER_ISA_COUNT || !cpu_has(isa)) return NULL;
    return table_of(isa);
}

static const kernel_table *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    static const char *const names[INFER_ISA_COUNT] = {"ref", "avx2", "avxvnni", "avx512", "neon"};
    const kernel_table *best = &kernels_ref;
    for (int i = INFER_ISA_COUNT - 1; i > 0; i--) {
        if (kernels_for((infer_isa)i)) {
            best = kernels_for((infer_isa)i);
            break;
        }
    }
    const char *want = getenv("INFER_CPU");
    if (want && *want) {
        int found = 0;
        for (int i = 0; i < INFER_ISA_COUNT; i++) {
            if (strcmp(want, names[i]) != 0) continue;
            found = 1;
            if (kernels_for((infer_isa)i)) best = kernels_for((infer_isa)i);
            else fprintf(stderr, "infer: INFER_CPU=%s: not available on this machine, using %s\n", want, best->name);
        }
        if (!found) {
            char q[64];
            fprintf(stderr, "infer: INFER_CPU=%s: unknown (ref, avx2, avxvnni, avx512, neon), using %s\n",
                    escape_cstr(want, q, sizeof q), best->name);
        }
    }
    chosen = best;
}

static kernels_prefetch sw_prefetch;
static pthread_once_t prefetch_once = PTHREAD_ONCE_INIT;

kernels_prefetch kernels_prefetch_default(void) {
#if defined(__x86_64__)
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return KERNELS_PF_NONE;
    /* Vendor string in EBX, EDX, ECX: "Genu" "ineI" "ntel", "Auth" "enti" "cAMD". */
    if (b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu) return KERNELS_PF_L1;
    if (b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u) return KERNELS_PF_L2;
#endif
    return KERNELS_PF_NONE;
}

kernels_prefetch kernels_prefetch_choose(const char *want, kernels_prefetch cpu) {
    if (!want || !*want) return cpu;
    if (strcmp(want, "0") == 0 || strcmp(want, "1") == 0 || strcmp(want, "2") == 0)
        return (kernels_prefetch)(want[0] - '0');
    char q[64];
    fprintf(stderr, "infer: INFER_CPU_PREFETCH=%s: unknown (0 none, 1 near, 2 far), using the CPU's default\n",
            escape_cstr(want, q, sizeof q));
    return cpu;
}

static void choose_prefetch(void) {
    sw_prefetch = kernels_prefetch_choose(getenv("INFER_CPU_PREFETCH"), kernels_prefetch_default());
}

kernels_prefetch kernels_sw_prefetch(void) {
    pthread_once(&prefetch_once, choose_prefetch);
    return sw_prefetch;
}

const kernel_table *kernels_get(void) {
    pthread_once(&chosen_once, choose);
    return chosen;
}

/* ---- per-thread scratch -------------------------------------------------- */

static _Thread_local void *tl_scratch;    /* 64-aligned, inside the block scratch_key holds */
static pthread_key_t scratch_key;          /* its destructor frees the raw block */
static int scratch_key_ok;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *raw) {
    tl_scratch = NULL; /* runs on the exiting thread: a later destructor's kernel reserves afresh */
    infer_free(raw);
}

static void scratch_key_init(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0; }

int kernels_scratch_reserve(void) {
    if (tl_scratch) return 0;
    pthread_once(&scratch_once, scratch_key_init);
    if (!scratch_key_ok) return -1;
    void *raw = infer_malloc(KERNELS_SCRATCH_BYTES + 63);
    if (!raw) return -1;
    if (pthread_setspecific(scratch_key, raw) != 0) {
        infer_free(raw);
        return -1;
    }
    tl_scratch = (void *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    return 0;
}

void *kernels_scratch(void) {
    if (tl_scratch) return tl_scratch;
    if (kernels_scratch_reserve() != 0) {
        fprintf(stderr, "infer: out of memory for a kernel's scratch (%zu bytes)\n", KERNELS_SCRATCH_BYTES);
        abort();
    }
    return tl_scratch;
}
