/*
 * fuzz_model.c - libFuzzer over the whole model loader (GGUF parse,
 * tokenizer, hyperparameters, tensor binding) from memory; small models
 * that load are also run for a couple of tokens, so hostile shapes and
 * values reach the forward pass and the sampler. Those are then loaded
 * again from a file (a memfd), mapped or read into memory by the input's
 * last bit, and run on two threads: the CPU kernels repack a file's
 * weights (model_pack.c, on the context's pool), which they never do for a
 * model in the caller's memory.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "infer.h"

/* A couple of tokens on a small context of n_threads. */
static void run(infer_model *m, int n_threads) {
    infer_context_params cp = infer_context_default_params();
    cp.n_ctx = 4;
    cp.n_threads = n_threads;
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

/* The same bytes as a file: loaded (or refused) and run. */
static void run_from_file(const uint8_t *data, size_t size) {
    const int fd = memfd_create("fuzz_model", 0);
    if (fd < 0) return;
    size_t done = 0;
    while (done < size) {
        const ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    infer_model_params mp = infer_model_default_params();
    mp.use_mmap = data[size - 1] & 1;
    infer_model *m = NULL;
    if (done == size && infer_model_load(path, &mp, &m, NULL) == INFER_OK) {
        run(m, 2);
        infer_model_release(m);
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    infer_model *m = NULL;
    if (infer_model_load_memory(data, size, NULL, &m, NULL) != INFER_OK) return 0;
    /* Run only models small enough to keep each input fast. */
    const int small =
        infer_model_size(m) < (4u << 20) && infer_model_n_embd(m) <= 4096 && infer_model_n_vocab(m) <= 65536;
    if (small) run(m, 0);
    char piece[64];
    size_t len;
    for (int32_t id = 0; id < infer_model_n_vocab(m) && id < 64; id++) infer_token_to_piece(m, id, 1, piece, sizeof piece, &len);
    infer_model_release(m);
    if (small && size > 0) run_from_file(data, size);
    return 0;
}
