/*
 * sampler.c - picking the next token, in llama.cpp's default order:
 * repeat penalty -> top-k -> top-p -> min-p -> temperature -> draw.
 * temp <= 0 is greedy: the highest logit, the first one on ties. With
 * ignore_eog the model's end-of-generation tokens count as -inf first (a
 * logit bias of -inf, as llama.cpp's --ignore-eos sets).
 *
 * Survives any logits (HOSTILE.md D.34): NaN counts as -inf, +inf as the
 * largest float, all -inf/NaN picks token 0; every loop is bounded by the
 * vocabulary size. All buffers are allocated at creation, none per token.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

typedef struct {
    int32_t id;
    float logit;
    float p;
} candidate;

struct infer_sampler {
    infer_sampler_params p;
    int32_t n_vocab;
    candidate *cand; /* [n_vocab] */
    int32_t *hist;   /* ring of the last repeat_last_n accepted tokens */
    int32_t n_hist, hist_pos;
    uint8_t *seen;   /* [n_vocab] scratch for the penalty */
    int32_t *eog;    /* with ignore_eog: the end-of-generation tokens, never picked */
    int32_t n_eog;
    uint64_t rng;
};

infer_sampler_params infer_sampler_default_params(void) {
    infer_sampler_params p = {.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                              .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = INFER_SEED_RANDOM};
    return p;
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

infer_status infer_sampler_new(const infer_model *m, const infer_sampler_params *params, infer_sampler **out,
                               infer_error *err) {
    infer_sampler_params p = params ? *params : infer_sampler_default_params();
    if (!m || !out) return set_error(err, INFER_EINVAL, "infer_sampler_new: NULL argument");
    *out = NULL;
    if (isnan(p.temp) || isnan(p.top_p) || isnan(p.min_p) || !(p.repeat_penalty > 0.0f) || !isfinite(p.repeat_penalty)) {
        return set_error(err, INFER_EINVAL, "sampler: temp/top_p/min_p must be numbers and repeat_penalty > 0");
    }
    int32_t nv = (int32_t)m->hp.n_vocab;
    if (p.repeat_last_n < 0) p.repeat_last_n = 0;
    if ((int64_t)p.repeat_last_n > (int64_t)nv * 4) p.repeat_last_n = nv * 4; /* no point looking further */
    infer_sampler *s = infer_calloc(1, sizeof *s);
    if (!s) return set_error(err, INFER_ENOMEM, "out of memory");
    s->p = p;
    s->n_vocab = nv;
    s->cand = infer_malloc_array((size_t)nv, sizeof *s->cand);
    s->seen = infer_calloc((size_t)nv, 1);
    s->hist = infer_malloc_array(p.repeat_last_n ? (size_t)p.repeat_last_n : 1, sizeof *s->hist);
    if (!s->cand || !s->seen || !s->hist) {
        infer_sampler_free(s);
        return set_error(err, INFER_ENOMEM, "out of memory for the sampler");
    }
    if (p.ignore_eog) {
        for (int32_t i = 0; i < nv; i++) s->n_eog += vocab_is_eog(m->vocab, i) != 0;
        s->eog = infer_malloc_array(s->n_eog ? (size_t)s->n_eog : 1, sizeof *s->eog);
        if (!s->eog) {
            infer_sampler_free(s);
            return set_error(err, INFER_ENOMEM, "out of memory for the sampler");
        }
        for (int32_t i = 0, k = 0; i < nv && k < s->n_eog; i++)
            if (vocab_is_eog(m->vocab, i)) s->eog[k++] = i;
    }
    if (p.seed == INFER_SEED_RANDOM) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t mix = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)s;
        s->p.seed = rng_next(&mix) & 0xffffffffu; /* printable, reusable with -s */
    }
    s->rng = s->p.seed;
    *out = s;
    return INFER_OK;
}

void infer_sampler_free(infer_sampler *s) {
    if (!s) return;
    infer_free(s->cand);
    infer_free(s->seen);
    infer_free(s->hist);
    infer_free(s->eog);
    infer_free(s);
}

uint64_t infer_sampler_seed(const infer_sampler *s) { return s ? s->p.seed : 0; }

void infer_sampler_reset(infer_sampler *s) {
    if (!s) return;
    s->n_hist = 0;
    s->hist_pos = 0;
    s->rng = s->p.seed;
}

void infer_sampler_accept(infer_sampler *s, int32_t token) {
    if (!s || s->p.repeat_last_n == 0 || token < 0 || token >= s->n_vocab) return;
    s->hist[s->hist_pos] = token;
    s->hist_pos = (s->hist_pos + 1) % s->p.repeat_last_n;
    if (s->n_hist < s->p.repeat_last_n) s->n_hist++;
}

static float sane(float x) {
    if (isnan(x)) return -INFINITY;
    if (x > FLT_MAX) return FLT_MAX;
    return x;
}

static int cmp_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id); /* stable: lower id first */
}

/* Softmax over cand[0..n) (sorted descending, so cand[0] is the max). */
static void softmax(candidate *c, int32_t n) {
    const float mx = c[0].logit;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        c[i].p = mx == -INFINITY ? (i == 0) : expf(c[i].logit - mx);
        sum += c[i].p;
    }
    for (int32_t i = 0; i < n; i++) c[i].p = (float)(c[i].p / sum);
}

/* Move the k largest to the front, sorted (quickselect, then sort k). */
static void top_k_sort(candidate *c, int32_t n, int32_t k) {
    if (k < n) {
        int32_t lo = 0, hi = n - 1;
        while (lo < hi) {
            candidate pivot = c[lo + (hi - lo) / 2];
            int32_t i = lo, j = hi;
            while (i <= j) {
                while (cmp_desc(&c[i], &pivot) < 0) i++;
                while (cmp_desc(&c[j], &pivot) > 0) j--;
                if (i <= j) {
                    candidate t = c[i];
                    c[i++] = c[j];
                    c[j--] = t;
                }
            }
            if (k - 1 <= j) hi = j;
            else if (k - 1 >= i) lo = i;
            else break;
        }
    }
    qsort(c, (size_t)(k < n ? k : n), sizeof *c, cmp_desc);
}

int32_t infer_sampler_sample(infer_sampler *s, const float *logits) {
    if (!s || !logits) return -1;
    const infer_sampler_params *p = &s->p;
    const int32_t nv = s->n_vocab;
    candidate *c = s->cand;
    for (int32_t i = 0; i < nv; i++) c[i] = (candidate){i, sane(logits[i]), 0.0f};
    for (int32_t i = 0; i < s->n_eog; i++) c[s->eog[i]].logit = -INFINITY; /* ids < n_vocab: made so */

    /* Repeat penalty: each distinct recent token once, as llama.cpp. */
    if (p->repeat_penalty != 1.0f && s->n_hist > 0) {
        for (int32_t i = 0; i < s->n_hist; i++) {
            int32_t t = s->hist[i];
            if (s->seen[t]) continue;
            s->seen[t] = 1;
            float *l = &c[t].logit;
            *l = *l > 0.0f ? *l / p->repeat_penalty : *l * p->repeat_penalty;
            *l = sane(*l);
        }
        for (int32_t i = 0; i < s->n_hist; i++) s->seen[s->hist[i]] = 0;
    }

    if (p->temp <= 0.0f) { /* greedy: first maximum */
        int32_t best = 0;
        for (int32_t i = 1; i < nv; i++) if (c[i].logit > c[best].logit) best = i;
        return best;
    }

    int32_t n = nv;
    int32_t k = p->top_k > 0 && p->top_k < nv ? p->top_k : nv;
    top_k_sort(c, n, k);
    n = k;
    softmax(c, n);
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        int32_t keep = n;
        for (int32_t i = 0; i < n; i++) {
            cum += c[i].p;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep > 0 ? keep : 1;
    }
    if (p->min_p > 0.0f) {
        const float cut = c[0].p * p->min_p;
        int32_t keep = 1;
        while (keep < n && c[keep].p >= cut) keep++;
        n = keep;
    }
    for (int32_t i = 0; i < n; i++) c[i].logit = sane(c[i].logit / p->temp);
    softmax(c, n);
    double r = rng_uniform(&s->rng), cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        cum += c[i].p;
        if (r < cum) return c[i].id;
    }
    /* Rounding left r above the total (float probabilities may sum to
     * just under 1): the last candidate that had any chance, never one of
     * probability 0 (a NaN or -inf logit the draw must not return). */
    while (n > 1 && !(c[n - 1].p > 0.0f)) n--;
    return c[n - 1].id;
}

int32_t sampler_n_vocab(const infer_sampler *s) { return s->n_vocab; }
