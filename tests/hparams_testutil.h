/*
 * hparams_testutil.h - the hyperparameters of the one-layer models that
 * tests build by hand around a backend (no file): n_head heads of hd
 * values, n_head_kv KV heads, n_rot rotated dims (neox: NEOX pairs),
 * a 300-token vocabulary and a 64-wide feed-forward.
 */
#ifndef INFER_TESTS_HPARAMS_TESTUTIL_H
#define INFER_TESTS_HPARAMS_TESTUTIL_H

#include <stdint.h>

#include "model.h"

static inline void test_rig_hparams(model_hparams *hp, uint32_t n_head, uint32_t n_head_kv, uint32_t hd,
                                    uint32_t n_rot, int neox) {
    hp->n_vocab = 300;
    hp->n_embd = n_head * hd;
    hp->n_layer = 1;
    hp->n_head = n_head;
    hp->n_head_kv = n_head_kv;
    hp->n_embd_head_k = hp->n_embd_head_v = hd;
    hp->n_rot = n_rot;
    hp->n_ff = 64;
    hp->rms_eps = 1e-5f;
    hp->rope_freq_base = 10000.0f;
    hp->rope_freq_scale = 1.0f;
    hp->rope_type = neox ? ROPE_NEOX : ROPE_NORM;
}

#endif
