/* test_api_null.c - every public function of infer.h given NULL where it
 * takes a pointer (and out-of-range values where it takes an index or a
 * token id) answers with an error status, NULL, 0 or -1, or does nothing:
 * never a crash (DESIGN.md rule 3: nothing a caller controls aborts). */
#include <math.h>

#include "infer.h"
#include "testutil.h"

Test(api_null, model_functions) {
    infer_error err = {0};
    infer_model *m = (infer_model *)1;
    cr_assert_eq(infer_model_load(NULL, NULL, &m, &err), INFER_EINVAL);
    cr_assert_eq(infer_model_load("x.gguf", NULL, NULL, &err), INFER_EINVAL);
    cr_assert_eq(infer_model_load_memory(NULL, 10, NULL, &m, &err), INFER_EINVAL);
    cr_assert_eq(infer_model_load_memory("GGUF", 4, NULL, NULL, &err), INFER_EINVAL);
    cr_assert_null(infer_model_retain(NULL));
    infer_model_release(NULL);
    cr_assert_null(infer_model_arch(NULL));
    cr_assert_null(infer_model_desc(NULL));
    cr_assert_eq(infer_model_n_vocab(NULL), 0);
    cr_assert_eq(infer_model_n_ctx_train(NULL), 0);
    cr_assert_eq(infer_model_n_embd(NULL), 0);
    cr_assert_eq(infer_model_n_layer(NULL), 0);
    cr_assert_eq(infer_model_n_params(NULL), 0);
    cr_assert_eq(infer_model_size(NULL), 0);
    cr_assert_eq(infer_model_streamed_bytes(NULL), 0);
    cr_assert_eq(infer_token_bos(NULL), -1);
    cr_assert_eq(infer_token_eos(NULL), -1);
    cr_assert_eq(infer_token_is_eog(NULL, 2), 0);
    size_t n = 1;
    int32_t ids[4];
    char buf[8];
    cr_assert_eq(infer_tokenize(NULL, "a", 1, 0, ids, 4, &n, &err), INFER_EINVAL);
    cr_assert_eq(infer_token_to_piece(NULL, 1, 0, buf, sizeof buf, &n), INFER_EINVAL);
}

/* A loaded model with NULL out-pointers, text, buffers; ids out of range. */
static void *g_buf;
static size_t g_size;
#include "synth.h"
static infer_model *small_model(void) {
    infer_error err = {0};
    if (!g_buf) {
        synth_params p = synth_default_params();
        cr_assert_eq(synth_model(&p, &g_buf, &g_size, &err), INFER_OK, "%s", err.message);
    }
    infer_model *m = NULL;
    cr_assert_eq(infer_model_load_memory(g_buf, g_size, NULL, &m, &err), INFER_OK, "%s", err.message);
    return m;
}

Test(api_null, model_arguments) {
    infer_model *m = small_model();
    infer_error err = {0};
    size_t n = 0;
    int32_t ids[4];
    char buf[8];
    cr_assert_eq(infer_token_is_eog(m, -5), 0);
    cr_assert_eq(infer_token_is_eog(m, 1 << 30), 0);
    cr_assert_eq(infer_tokenize(m, NULL, 3, 0, ids, 4, &n, &err), INFER_EINVAL);
    cr_assert_eq(infer_tokenize(m, NULL, 0, 0, ids, 4, &n, &err), INFER_OK); /* no text: no tokens */
    cr_assert_eq(n, 0);
    cr_assert_eq(infer_tokenize(m, "a", 1, 0, NULL, 4, &n, &err), INFER_EINVAL);
    cr_assert_eq(infer_tokenize(m, "a", 1, 0, ids, 4, NULL, &err), INFER_EINVAL);
    cr_assert_eq(infer_token_to_piece(m, 300, 0, buf, sizeof buf, &n), INFER_EINVAL);
    cr_assert_eq(infer_token_to_piece(m, -1, 0, buf, sizeof buf, &n), INFER_EINVAL);
    cr_assert_eq(infer_token_to_piece(m, 5, 0, NULL, 4, &n), INFER_EINVAL);
    cr_assert_eq(infer_token_to_piece(m, 5, 0, buf, sizeof buf, NULL), INFER_EINVAL);
    infer_context *c = (infer_context *)1;
    cr_assert_eq(infer_context_new(NULL, NULL, &c, &err), INFER_EINVAL);
    cr_assert_eq(infer_context_new(m, NULL, NULL, &err), INFER_EINVAL);
    infer_sampler *s = (infer_sampler *)1;
    cr_assert_eq(infer_sampler_new(NULL, NULL, &s, &err), INFER_EINVAL);
    cr_assert_eq(infer_sampler_new(m, NULL, NULL, &err), INFER_EINVAL);
    infer_model_release(m);
    free(g_buf);
    g_buf = NULL;
    LEAK_CHECK();
}

Test(api_null, context_functions) {
    infer_error err = {0};
    infer_context_free(NULL);
    cr_assert_eq(infer_context_backend(NULL), INFER_BACKEND_CPU);
    cr_assert_not_null(infer_context_backend_note(NULL));
    cr_assert_eq(infer_context_n_ctx(NULL), 0);
    cr_assert_eq(infer_context_n_past(NULL), 0);
    const int32_t tok = 1;
    cr_assert_eq(infer_decode(NULL, &tok, 1, 0, &err), INFER_EINVAL);
    cr_assert_null(infer_logits(NULL));
    cr_assert_null(infer_logits_ith(NULL, 0));
    cr_assert_eq(infer_context_reset(NULL), INFER_EINVAL);
    cr_assert_eq(infer_context_shift(NULL, 0, 1), INFER_EINVAL);
    size_t n = 0;
    cr_assert_eq(infer_vulkan_devices(NULL, 4, &n, &err), INFER_EINVAL);
    infer_model *m = small_model();
    infer_context *c = NULL;
    cr_assert_eq(infer_context_new(m, NULL, &c, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_decode(c, NULL, 1, 0, &err), INFER_EINVAL);
    cr_assert_eq(infer_decode(c, NULL, 0, 0, &err), INFER_EINVAL); /* no tokens */
    cr_assert_null(infer_logits(c));
    cr_assert_eq(infer_decode(c, &tok, 1, 0, &err), INFER_OK, "%s", err.message);
    cr_assert_not_null(infer_logits(c));
    cr_assert_null(infer_logits_ith(c, 1));
    cr_assert_null(infer_logits_ith(c, (size_t)-1));
    cr_assert_eq(infer_context_shift(c, 2, 0), INFER_EINVAL);
    infer_context_free(c);
    infer_model_release(m);
    free(g_buf);
    g_buf = NULL;
    LEAK_CHECK();
}

Test(api_null, sampler_and_generate_functions) {
    infer_error err = {0};
    infer_sampler_free(NULL);
    cr_assert_eq(infer_sampler_seed(NULL), 0);
    float l[4] = {0};
    cr_assert_eq(infer_sampler_sample(NULL, l), -1);
    infer_sampler_accept(NULL, 1);
    infer_sampler_reset(NULL);
    infer_model *m = small_model();
    infer_sampler *s = NULL;
    cr_assert_eq(infer_sampler_new(m, NULL, &s, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_sampler_sample(s, NULL), -1);
    infer_sampler_accept(s, -3);
    infer_sampler_accept(s, 1 << 30);
    const int32_t tok = 1;
    cr_assert_eq(infer_generate(NULL, s, &tok, 1, NULL, NULL, NULL, NULL, &err), INFER_EINVAL);
    infer_context *c = NULL;
    cr_assert_eq(infer_context_new(m, NULL, &c, &err), INFER_OK, "%s", err.message);
    cr_assert_eq(infer_generate(c, NULL, &tok, 1, NULL, NULL, NULL, NULL, &err), INFER_EINVAL);
    cr_assert_eq(infer_generate(c, s, NULL, 1, NULL, NULL, NULL, NULL, &err), INFER_EINVAL);
    infer_context_free(c);
    infer_sampler_free(s);
    infer_model_release(m);
    free(g_buf);
    g_buf = NULL;
    LEAK_CHECK();
}

/* The GGUF reader's and writer's functions (infer_gguf.h) likewise. */
Test(api_null, gguf_functions) {
    infer_error err = {0};
    infer_gguf *g = (infer_gguf *)1;
    cr_assert_eq(infer_gguf_open(NULL, 0, &g, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_open("x.gguf", 0, NULL, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_open_memory(NULL, 8, 0, &g, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_open_memory("GGUF", 4, 0, NULL, &err), INFER_EINVAL);
    infer_gguf_close(NULL);
    cr_assert_eq(infer_gguf_version(NULL), 0);
    cr_assert_eq(infer_gguf_alignment(NULL), 0);
    cr_assert_eq(infer_gguf_data_offset(NULL), 0);
    cr_assert_eq(infer_gguf_file_size(NULL), 0);
    cr_assert_null(infer_gguf_file_data(NULL));
    cr_assert_eq(infer_gguf_kv_count(NULL), 0);
    cr_assert_eq(infer_gguf_kv_key(NULL, 0).len, 0);
    cr_assert_eq(infer_gguf_kv_type(NULL, 0), INFER_GGUF_VALUE_TYPE_COUNT);
    cr_assert_eq(infer_gguf_kv_arr_type(NULL, 0), INFER_GGUF_VALUE_TYPE_COUNT);
    cr_assert_eq(infer_gguf_kv_arr_count(NULL, 0), 0);
    cr_assert_eq(infer_gguf_find_key(NULL, "a"), -1);
    uint8_t v[8];
    infer_gguf_str s;
    uint64_t u;
    cr_assert_eq(infer_gguf_kv_scalar(NULL, 0, INFER_GGUF_UINT32, v, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_kv_string(NULL, 0, &s, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_get_u32(NULL, "a", (uint32_t *)v, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_get_str(NULL, "a", &s, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_get_uint(NULL, "a", &u, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_arr_read(NULL, 0, INFER_GGUF_UINT8, 0, 1, v, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_arr_str(NULL, 0, 0, &s, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_tensor_count(NULL), 0);
    cr_assert_null(infer_gguf_tensor_at(NULL, 0));
    cr_assert_eq(infer_gguf_find_tensor(NULL, "t"), -1);

    /* A real file with NULL keys, names and out-pointers. */
    infer_gguf_writer *w = NULL;
    cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
    cr_assert_eq(infer_gguf_writer_set_u32(w, "a", 7), INFER_OK);
    const uint8_t arr[3] = {1, 2, 3};
    cr_assert_eq(infer_gguf_writer_set_arr(w, "arr", INFER_GGUF_UINT8, arr, 3), INFER_OK);
    void *buf = NULL;
    size_t size = 0;
    cr_assert_eq(infer_gguf_writer_finish(w, &buf, &size, &err), INFER_OK);
    infer_gguf_writer_free(w);
    cr_assert_eq(infer_gguf_open_memory(buf, size, 0, &g, &err), INFER_OK);
    cr_assert_eq(infer_gguf_find_key(g, NULL), -1);
    cr_assert_eq(infer_gguf_find_tensor(g, NULL), -1);
    cr_assert_eq(infer_gguf_get_u32(g, NULL, (uint32_t *)v, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_get_u32(g, "a", NULL, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_get_uint(g, "a", NULL, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_kv_scalar(g, 0, INFER_GGUF_UINT32, NULL, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_arr_read(g, 1, INFER_GGUF_UINT8, 0, 3, NULL, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_arr_read(g, 1, INFER_GGUF_UINT8, 0, 0, NULL, &err), INFER_OK); /* nothing asked */
    cr_assert_eq(infer_gguf_arr_str(g, 1, 0, NULL, &err), INFER_EINVAL);
    infer_gguf_close(g);
    free(buf);

    /* The writer with NULL names and values. */
    cr_assert_eq(infer_gguf_writer_new(NULL, &err), INFER_EINVAL);
    infer_gguf_writer_free(NULL);
    for (int k = 0; k < 7; k++) {
        cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
        uint64_t ne[4] = {32, 1, 1, 1};
        infer_status st = k == 0   ? infer_gguf_writer_set_u32(w, NULL, 1)
                          : k == 1 ? infer_gguf_writer_set(w, "a", INFER_GGUF_UINT32, NULL)
                          : k == 2 ? infer_gguf_writer_set_str(w, "a", NULL, 3)
                          : k == 3 ? infer_gguf_writer_set_arr(w, "a", INFER_GGUF_UINT8, NULL, 3)
                          : k == 4 ? infer_gguf_writer_set_arr_str(w, "a", NULL, NULL, 2)
                          : k == 5 ? infer_gguf_writer_add_tensor(w, "t", INFER_TYPE_F32, 1, ne, NULL, 128)
                                   : infer_gguf_writer_add_tensor(w, "t", INFER_TYPE_F32, 1, NULL, NULL, 0);
        cr_assert_eq(st, INFER_EINVAL, "case %d", k);
        cr_assert_eq(infer_gguf_writer_finish(w, NULL, &size, &err), INFER_EINVAL);
        infer_gguf_writer_free(w);
    }
    cr_assert_eq(infer_gguf_writer_finish(NULL, &buf, &size, &err), INFER_EINVAL);
    cr_assert_eq(infer_gguf_writer_write_file(NULL, "/tmp/x", &err), INFER_EINVAL);
    LEAK_CHECK();
}
