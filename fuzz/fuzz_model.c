/*
 * fuzz_model.c - libFuzzer over the whole model loader (GGUF parse,
 * tokenizer, hyperparameters, tensor binding) from memory; small models
 * that load are also run for a couple of tokens, so hostile shapes and
 * values reach the forward pass and the sampler.
 */
#include <stddef.h>
#include <stdint.h>

#include "infer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    infer_model *m = NULL;
    if (infer_model_load_memory(data, size, NULL, &m, NULL) != INFER_OK) return 0;
    /* Run only models small enough to keep each input fast. */
    if (infer_model_size(m) < (4u << 20) && infer_model_n_embd(m) <= 4096 && infer_model_n_vocab(m) <= 65536) {
        infer_context_params cp = infer_context_default_params();
        cp.n_ctx = 4;
        infer_context *c = NULL;
        infer_sampler *s = NULL;
        infer_sampler_params sp = infer_sampler_default_params();
        sp.seed = 1;
        if (infer_context_new(m, &cp, &c, NULL) == INFER_OK && infer_sampler_new(m, &sp, &s, NULL) == INFER_OK) {
            int32_t tok = infer_token_bos(m) >= 0 ? infer_token_bos(m) : 0;
            for (int i = 0; i < 2 && infer_decode(c, &tok, 1, 0, NULL) == INFER_OK; i++) {
                tok = infer_sampler_sample(s, infer_logits(c));
            }
        }
        infer_sampler_free(s);
        infer_context_free(c);
    }
    char piece[64];
    size_t len;
    for (int32_t id = 0; id < infer_model_n_vocab(m) && id < 64; id++) infer_token_to_piece(m, id, 1, piece, sizeof piece, &len);
    infer_model_release(m);
    return 0;
}
