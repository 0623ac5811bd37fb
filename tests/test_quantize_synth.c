/* test_quantize_synth.c - infer-synth (suite quantize_synth): shapes and
 * presets, a synthetic model through infer-quantize into infer_model_load
 * and decode, the Q3_K_M / Q3_K_L types on a 16-layer one, the output /
 * token-embedding type options, tied embeddings, and the tensors written
 * in llama-quantize's order.
 *
 * The tools run as programs found next to $INFER_BIN (set by `make test`);
 * those tests skip without it. */
#include <math.h>
#include <unistd.h>

#include "infer.h"
#include "testutil.h"
#include "quantize_testutil.h"

/* ======================= infer-synth ============================================ */

/* dir/out.txt (malloc'd, NUL-terminated). */
static char *tool_stdout(const char *dir) {
    char path[600];
    size_t n;
    snprintf(path, sizeof path, "%s/out.txt", dir);
    char *s = read_file(path, &n);
    cr_assert_not_null(s);
    return s;
}

Test(quantize_synth, presets_have_the_models_shapes) {
    char dir[64], out[600];
    temp_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/t.gguf", dir);
    static const struct {
        const char *preset, *shapes;
    } presets[] = {
        {"tinyllama-1.1b", "n_embd 2048, 22 layers, 32/4 heads, n_ff 5632, vocab 32000, ctx 2048, q4_0"},
        {"llama-7b", "n_embd 4096, 32 layers, 32/32 heads, n_ff 11008, vocab 32000, ctx 4096, q4_0"},
    };
    for (size_t i = 0; i < 2; i++) {
        const char *args[] = {out, "--preset", presets[i].preset, "--type", "Q4_0", "--dry-run", NULL};
        cr_assert_eq(run_tool("infer-synth", dir, args), 0);
        char *o = tool_stdout(dir);
        cr_expect(strstr(o, presets[i].shapes) != NULL, "%s: %s", presets[i].preset, o);
        free(o);
        cr_expect_neq(access(out, F_OK), 0, "--dry-run wrote a file");
    }
    remove_dir(dir);
}

Test(quantize_synth, options_override_the_preset) {
    char dir[64], out[600];
    temp_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/t.gguf", dir);
    /* TinyLlama's KV heads and context, the rest made small */
    const char *args[] = {out, "--n-embd", "512", "--preset", "tinyllama-1.1b", "--n-head", "8", "--n-layer", "1",
                          "--n-ff", "256", "--n-vocab", "300", "--type", "Q8_0", "--seed", "3", NULL};
    int rc = run_tool("infer-synth", dir, args);
    char *e = tool_stderr(dir);
    cr_assert_eq(rc, 0, "%s", e);
    free(e);
    infer_gguf *g = test_open_gguf(out);
    static const struct {
        const char *key;
        uint64_t v;
    } want[] = {{"llama.embedding_length", 512},     {"llama.block_count", 1},
                {"llama.attention.head_count", 8},   {"llama.attention.head_count_kv", 4},
                {"llama.feed_forward_length", 256},  {"llama.context_length", 2048}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        uint64_t v = 0;
        cr_expect_eq(infer_gguf_get_uint(g, want[i].key, &v, NULL), INFER_OK, "%s", want[i].key);
        cr_expect_eq(v, want[i].v, "%s = %llu", want[i].key, (unsigned long long)v);
    }
    const infer_gguf_tensor *t = infer_gguf_tensor_at(g, (uint64_t)infer_gguf_find_tensor(g, "blk.0.attn_k.weight"));
    cr_expect_eq(t->type, INFER_TYPE_Q8_0);
    cr_expect_eq(t->ne[1], 256); /* 4 KV heads of 64 */
    const int64_t tok = infer_gguf_find_key(g, "tokenizer.ggml.tokens");
    cr_assert_geq(tok, 0);
    cr_expect_eq(infer_gguf_kv_arr_count(g, (uint64_t)tok), 300);
    infer_gguf_close(g);
    remove_dir(dir);
}

Test(quantize_synth, bad_options_are_refused) {
    char dir[64], out[600];
    temp_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/t.gguf", dir);
    const char *const bad[][6] = {
        {out, "--type", "Q4_K_M", NULL},        /* a mixture: infer-quantize's job */
        {out, "--type", "Q4_K", NULL},          /* n_embd 32: not whole 256-value blocks */
        {out, "--n-head", "3", NULL},           /* does not divide n_embd */
        {out, "--n-head", "32", "--n-head-kv", "32", NULL}, /* head size 1: the loader refuses odd rope dims */
        {out, "--n-vocab", "100", NULL},        /* below the 259 fixed tokens */
        {out, "--n-embd", "0", NULL},
        {out, "--n-layer", "99999999999", NULL},
        {out, "--preset", "gpt-5", NULL},
        {out, "--arch", "gpt2", NULL},
        {out, "--bogus", "1", NULL},
        {out, "--seed", NULL},
        {out, "--seed", " -1", NULL},           /* strtoull would wrap it */
        {out, "--std", "1e-60", NULL},          /* 0 as a float */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_eq(run_tool("infer-synth", dir, bad[i]), 1, "case %zu (%s %s)", i, bad[i][1], bad[i][2] ? bad[i][2] : "");
        cr_expect_neq(access(out, F_OK), 0, "case %zu wrote a file", i);
    }
    remove_dir(dir);
}

static double cosine(const float *a, const float *b, int n) {
    double dot = 0, na = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return dot / sqrt(na * nb);
}

Test(quantize_synth, synthetic_model_through_quantize_loads_and_decodes, .timeout = TEST_TIMEOUT) {
    /* infer-synth (F16) -> infer-quantize Q4_K_M -> infer_model_load ->
     * decode: the mixture's types, and logits close to the F16 model's. */
    char dir[64], f16[600], q[600];
    temp_dir(dir, sizeof dir);
    snprintf(f16, sizeof f16, "%s/f16.gguf", dir);
    snprintf(q, sizeof q, "%s/q4km.gguf", dir);
    const char *sargs[] = {f16, "--n-embd", "256", "--n-layer", "4", "--n-head", "4", "--n-head-kv", "2",
                           "--n-ff", "512", "--n-vocab", "320", "--type", "F16", NULL};
    int rc = run_tool("infer-synth", dir, sargs);
    char *e = tool_stderr(dir);
    cr_assert_eq(rc, 0, "infer-synth: %s", e);
    free(e);
    const char *qargs[] = {f16, q, "Q4_K_M", NULL};
    rc = run_tool("infer-quantize", dir, qargs);
    e = tool_stderr(dir);
    cr_assert_eq(rc, 0, "infer-quantize: %s", e);
    free(e);

    infer_gguf *g = test_open_gguf(q);
    /* 4 layers: use_more_bits picks layer 3 (>= 7*4/8) and 2 ((2 - 4/8) % 3
     * == 2); the first eighth (4/8 = 0 layers) is empty */
    static const struct {
        const char *name;
        uint32_t type;
    } want[] = {
        {"output.weight", INFER_TYPE_Q6_K},         {"token_embd.weight", INFER_TYPE_Q4_K},
        {"blk.0.attn_v.weight", INFER_TYPE_Q4_K},   {"blk.1.attn_v.weight", INFER_TYPE_Q4_K},
        {"blk.2.attn_v.weight", INFER_TYPE_Q6_K},   {"blk.3.attn_v.weight", INFER_TYPE_Q6_K},
        {"blk.2.ffn_down.weight", INFER_TYPE_Q6_K}, {"blk.1.ffn_down.weight", INFER_TYPE_Q4_K},
        {"blk.3.ffn_up.weight", INFER_TYPE_Q4_K},   {"blk.3.ffn_norm.weight", INFER_TYPE_F32},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int64_t j = infer_gguf_find_tensor(g, want[i].name);
        cr_assert_geq(j, 0, "%s", want[i].name);
        cr_expect_eq(infer_gguf_tensor_at(g, (uint64_t)j)->type, want[i].type, "%s: %s", want[i].name,
                     infer_type_name(infer_gguf_tensor_at(g, (uint64_t)j)->type));
    }
    uint32_t ft = 0;
    cr_expect_eq(infer_gguf_get_u32(g, "general.file_type", &ft, NULL), INFER_OK);
    cr_expect_eq(ft, 15);
    infer_gguf_close(g);

    /* the quantized model's logits after a prompt follow the F16 model's
     * (quantization noise grows through a random network: measured cosine
     * 0.983 at the default std 0.02; a broken layout gives ~0) */
    const int32_t prompt[] = {1, 300, 17, 261, 290, 5};
    int32_t gen_f16[8], gen_q[8];
    float *lf = decode_greedy(f16, prompt, 6, 8, gen_f16);
    float *lq = decode_greedy(q, prompt, 6, 8, gen_q);
    const double cs = cosine(lf, lq, 320);
    cr_log_info("F16 vs Q4_K_M prompt logits: cosine %.5f; greedy %d %d %d %d vs %d %d %d %d", cs, gen_f16[0],
                gen_f16[1], gen_f16[2], gen_f16[3], gen_q[0], gen_q[1], gen_q[2], gen_q[3]);
    cr_expect_gt(cs, 0.95, "cosine %.5f", cs);
    free(lf);
    free(lq);
    remove_dir(dir);
}

Test(quantize_synth, q3_k_mixtures_follow_llama_quantize_rules, .timeout = TEST_TIMEOUT) {
    /* Q3_K_M and Q3_K_L as llama.cpp assigns them (non-Falcon, no experts),
     * on 16 layers, where the two Q3_K_M bumps part: attn_v of the first
     * two layers (i_attention_wv < 2) but ffn_down of the first sixteenth
     * (layer 0) in Q5_K, the other attn_v and ffn_down in Q4_K, attn_output
     * in Q4_K. Q3_K_L: attn_v, ffn_down and attn_output all Q5_K. The rest
     * Q3_K, output.weight Q6_K. (Checked byte for byte against
     * llama-quantize, outside the repository, on 32- and 40-layer models.) */
    char dir[64], f16[600], q[600];
    temp_dir(dir, sizeof dir);
    snprintf(f16, sizeof f16, "%s/f16.gguf", dir);
    const char *sargs[] = {f16, "--n-embd", "256", "--n-layer", "16", "--n-head", "4", "--n-head-kv", "2",
                           "--n-ff", "256", "--n-vocab", "300", "--type", "F16", NULL};
    tool_ok("infer-synth", dir, sargs);
    static const struct {
        const char *type;
        uint32_t ftype, v01, v_rest, down0, down1, down_rest, out;
    } mix[] = {
        {"Q3_K_M", 12, INFER_TYPE_Q5_K, INFER_TYPE_Q4_K, INFER_TYPE_Q5_K, INFER_TYPE_Q4_K, INFER_TYPE_Q4_K,
         INFER_TYPE_Q4_K},
        {"Q3_K_L", 13, INFER_TYPE_Q5_K, INFER_TYPE_Q5_K, INFER_TYPE_Q5_K, INFER_TYPE_Q5_K, INFER_TYPE_Q5_K,
         INFER_TYPE_Q5_K},
    };
    for (size_t k = 0; k < sizeof mix / sizeof *mix; k++) {
        snprintf(q, sizeof q, "%s/%s.gguf", dir, mix[k].type);
        const char *qargs[] = {f16, q, mix[k].type, NULL};
        infer_gguf *g = quantize_ok(dir, qargs);
        cr_expect_eq(type_of(g, "output.weight"), INFER_TYPE_Q6_K, "%s", mix[k].type);
        cr_expect_eq(type_of(g, "token_embd.weight"), INFER_TYPE_Q3_K, "%s", mix[k].type);
        for (int l = 0; l < 16; l++) {
            char n[64];
            static const char *const plain[] = {"attn_q", "attn_k", "ffn_gate", "ffn_up"};
            for (int i = 0; i < 4; i++) {
                snprintf(n, sizeof n, "blk.%d.%s.weight", l, plain[i]);
                cr_expect_eq(type_of(g, n), INFER_TYPE_Q3_K, "%s %s", mix[k].type, n);
            }
            snprintf(n, sizeof n, "blk.%d.attn_v.weight", l);
            cr_expect_eq(type_of(g, n), l < 2 ? mix[k].v01 : mix[k].v_rest, "%s %s: %s", mix[k].type, n,
                         infer_type_name(type_of(g, n)));
            snprintf(n, sizeof n, "blk.%d.ffn_down.weight", l);
            cr_expect_eq(type_of(g, n), l == 0 ? mix[k].down0 : l == 1 ? mix[k].down1 : mix[k].down_rest,
                         "%s %s: %s", mix[k].type, n, infer_type_name(type_of(g, n)));
            snprintf(n, sizeof n, "blk.%d.attn_output.weight", l);
            cr_expect_eq(type_of(g, n), mix[k].out, "%s %s", mix[k].type, n);
            snprintf(n, sizeof n, "blk.%d.attn_norm.weight", l);
            cr_expect_eq(type_of(g, n), INFER_TYPE_F32, "%s %s", mix[k].type, n);
        }
        uint32_t ft = 0;
        cr_expect_eq(infer_gguf_get_u32(g, "general.file_type", &ft, NULL), INFER_OK);
        cr_expect_eq(ft, mix[k].ftype, "%s: general.file_type %u", mix[k].type, ft);
        infer_gguf_close(g);
        /* and the result loads and decodes (decode_greedy checks that every
         * step's logits are finite) */
        const int32_t prompt[] = {1, 290, 17};
        int32_t gen[4];
        free(decode_greedy(q, prompt, 3, 4, gen));
    }
    remove_dir(dir);
}

/* The option tests' inputs in a new temporary dir: f16, a 2-layer F16
 * model of n_embd 256, and small, infer-synth's defaults (n_embd 32); q
 * names the output. Each path holds 600 bytes. */
static void option_models(char dir[64], char *f16, char *small, char *q) {
    temp_dir(dir, 64);
    snprintf(small, 600, "%s/small.gguf", dir);
    snprintf(q, 600, "%s/q.gguf", dir);
    synth_f16(dir, "f16.gguf", f16, "2", "2", "256", "300");
    const char *s2[] = {small, NULL};
    tool_ok("infer-synth", dir, s2);
}

Test(quantize_synth, tensor_type_options_as_llama_quantize) {
    /* --output-tensor-type / --token-embedding-type name those tensors'
     * types before any rule, --pure or not; --leave-output-tensor copies
     * output.weight. (Checked byte for byte against llama-quantize, outside
     * the repository, on a 32-layer synthetic model, in six combinations.) */
    char dir[64], f16[600], q[600], small[600];
    option_models(dir, f16, small, q);

    /* a mixture: the two tensors as named, the rules elsewhere (2 layers:
     * use_more_bits picks layer 1's attn_v for Q6_K) */
    const char *a1[] = {f16, q, "Q4_K_M", "--output-tensor-type", "q8_0", "--token-embedding-type", "F16", NULL};
    infer_gguf *g = quantize_ok(dir, a1);
    cr_expect_eq(type_of(g, "output.weight"), INFER_TYPE_Q8_0);
    cr_expect_eq(type_of(g, "token_embd.weight"), INFER_TYPE_F16);
    cr_expect_eq(type_of(g, "blk.1.attn_v.weight"), INFER_TYPE_Q6_K);
    cr_expect_eq(type_of(g, "blk.0.attn_q.weight"), INFER_TYPE_Q4_K);
    infer_gguf_close(g);

    /* --pure: every other weight in TYPE, output.weight still as named */
    const char *a2[] = {f16, q, "Q4_0", "--pure", "--output-tensor-type", "Q6_K", NULL};
    g = quantize_ok(dir, a2);
    cr_expect_eq(type_of(g, "output.weight"), INFER_TYPE_Q6_K);
    cr_expect_eq(type_of(g, "token_embd.weight"), INFER_TYPE_Q4_0);
    cr_expect_eq(type_of(g, "blk.1.attn_v.weight"), INFER_TYPE_Q4_0);
    infer_gguf_close(g);

    /* --leave-output-tensor wins over --output-tensor-type: the input's
     * bytes */
    const char *a3[] = {f16, q, "Q8_0", "--output-tensor-type", "q4_0", "--leave-output-tensor", NULL};
    g = quantize_ok(dir, a3);
    infer_gguf *in = test_open_gguf(f16);
    const infer_gguf_tensor *o = infer_gguf_tensor_at(g, (uint64_t)infer_gguf_find_tensor(g, "output.weight"));
    const infer_gguf_tensor *oi = infer_gguf_tensor_at(in, (uint64_t)infer_gguf_find_tensor(in, "output.weight"));
    cr_expect_eq(o->type, INFER_TYPE_F16);
    cr_expect(o->n_bytes == oi->n_bytes && !memcmp(o->data, oi->data, o->n_bytes), "output.weight copied");
    cr_expect_eq(type_of(g, "token_embd.weight"), INFER_TYPE_Q8_0);
    infer_gguf_close(in);
    infer_gguf_close(g);

    /* a named type that does not fit the rows is refused (no fallback, as
     * in llama.cpp, which stops there), and leaves no file; an unknown type
     * is a usage error */
    const char *a4[] = {small, q, "Q8_0", "--token-embedding-type", "q4_K", NULL};
    expect_refused(dir, a4, "token_embd.weight: rows of 32 values are not whole q4_K blocks (256)");
    const char *a5[] = {small, q, "Q8_0", "--output-tensor-type", "q7_0", NULL};
    cr_expect_eq(run_tool("infer-quantize", dir, a5), 1);
    const char *a6[] = {small, q, "Q8_0", "--output-tensor-type", NULL};
    cr_expect_eq(run_tool("infer-quantize", dir, a6), 1);
    remove_dir(dir);
}

Test(quantize_synth, tensor_type_patterns_as_llama_quantize) {
    /* --tensor-type PATTERN=T, as current llama-quantize: T for the weights
     * whose name the regex matches anywhere (lowercased; the first matching
     * option wins) in place of the rules, whose counters a matched tensor
     * does not advance; --pure or not; the fallback applies to T; under
     * --output-tensor-type / --token-embedding-type; a float TYPE ignores it. */
    char dir[64], f16[600], q[600], small[600];
    option_models(dir, f16, small, q);

    const char *a1[] = {f16, q, "Q4_K_M", "--tensor-type", "blk\\.0\\.attn_q=f16", "--tensor-type", "attn_q=q8_0",
                        "--tensor-type", "BLK\\.1\\.ffn_(up|gate)=Q5_0", NULL};
    infer_gguf *g = quantize_ok(dir, a1);
    cr_expect_eq(type_of(g, "blk.0.attn_q.weight"), INFER_TYPE_F16, "the first match wins");
    cr_expect_eq(type_of(g, "blk.1.attn_q.weight"), INFER_TYPE_Q8_0);
    cr_expect_eq(type_of(g, "blk.1.ffn_up.weight"), INFER_TYPE_Q5_0, "the pattern is lowercased");
    cr_expect_eq(type_of(g, "blk.1.ffn_gate.weight"), INFER_TYPE_Q5_0);
    cr_expect_eq(type_of(g, "blk.0.ffn_up.weight"), INFER_TYPE_Q4_K, "no match: the rules' type");
    cr_expect_eq(type_of(g, "blk.1.attn_v.weight"), INFER_TYPE_Q6_K, "no match: the rules' bump");
    cr_expect_eq(type_of(g, "output.weight"), INFER_TYPE_Q6_K);
    infer_gguf_close(g);

    /* layer 0's attn_v matched: the rules never count it, so layer 1's is
     * their first (use_more_bits(0, 2): no bump) */
    const char *a2[] = {f16, q, "Q4_K_M", "--tensor-type", "blk\\.0\\.attn_v=q8_0", NULL};
    g = quantize_ok(dir, a2);
    cr_expect_eq(type_of(g, "blk.0.attn_v.weight"), INFER_TYPE_Q8_0);
    cr_expect_eq(type_of(g, "blk.1.attn_v.weight"), INFER_TYPE_Q4_K, "the counter stayed put");
    infer_gguf_close(g);

    /* "output" is found inside attn_output too; the two named types win over
     * patterns; norms are never converted */
    const char *a3[] = {f16, q, "Q4_K_M", "--tensor-type", "output=q8_0", "--tensor-type", "^token_embd=q5_1",
                        "--output-tensor-type", "q4_0", NULL};
    g = quantize_ok(dir, a3);
    cr_expect_eq(type_of(g, "output.weight"), INFER_TYPE_Q4_0);
    cr_expect_eq(type_of(g, "blk.0.attn_output.weight"), INFER_TYPE_Q8_0);
    cr_expect_eq(type_of(g, "blk.1.attn_output.weight"), INFER_TYPE_Q8_0);
    cr_expect_eq(type_of(g, "token_embd.weight"), INFER_TYPE_Q5_1);
    cr_expect_eq(type_of(g, "output_norm.weight"), INFER_TYPE_F32);
    infer_gguf_close(g);
    const char *a4[] = {f16, q, "Q4_K_M", "--tensor-type", "token_embd=q4_0", "--token-embedding-type", "q5_0", NULL};
    g = quantize_ok(dir, a4);
    cr_expect_eq(type_of(g, "token_embd.weight"), INFER_TYPE_Q5_0);
    infer_gguf_close(g);

    /* --pure keeps the patterns; a float TYPE ignores them, and says so */
    const char *a5[] = {f16, q, "Q4_0", "--pure", "--tensor-type", "attn_q=q8_0", NULL};
    g = quantize_ok(dir, a5);
    cr_expect_eq(type_of(g, "blk.0.attn_q.weight"), INFER_TYPE_Q8_0);
    cr_expect_eq(type_of(g, "blk.0.attn_k.weight"), INFER_TYPE_Q4_0);
    infer_gguf_close(g);
    const char *a6[] = {f16, q, "F16", "--tensor-type", "attn_q=q8_0", NULL};
    g = quantize_ok(dir, a6);
    cr_expect_eq(type_of(g, "blk.0.attn_q.weight"), INFER_TYPE_F16);
    infer_gguf_close(g);
    char *e = tool_stderr(dir);
    cr_expect(strstr(e, "--tensor-type ignored") != NULL, "%s", e);
    free(e);

    /* n_embd 32: a pattern's q8_0 fits where the rules' q4_K would fall
     * back; a pattern's q4_K falls back to q5_0 as the rules' would */
    const char *a7[] = {small, q, "Q4_K_M", "--tensor-type", "attn_q=q8_0", "--tensor-type", "attn_k=q4_K", NULL};
    g = quantize_ok(dir, a7);
    cr_expect_eq(type_of(g, "blk.0.attn_q.weight"), INFER_TYPE_Q8_0);
    cr_expect_eq(type_of(g, "blk.0.attn_k.weight"), INFER_TYPE_Q5_0);
    infer_gguf_close(g);
    e = tool_stderr(dir);
    cr_expect(strstr(e, "blk.0.attn_k.weight: rows of 32 values are not whole q4_K blocks (256): using q5_0") != NULL,
              "%s", e);
    free(e);

    /* `.` does not match \r (as ECMAScript's): "attn.v" finds attn_v but not
     * attn\rv */
    char odd[600];
    snprintf(odd, sizeof odd, "%s/odd.gguf", dir);
    infer_gguf_writer *w = NULL;
    infer_error err = {0};
    cr_assert_eq(infer_gguf_writer_new(&w, &err), INFER_OK);
    static float data[64 * 2];
    const uint64_t ne[2] = {64, 2};
    cr_assert_eq(infer_gguf_writer_add_tensor(w, "x.attn_v.weight", INFER_TYPE_F32, 2, ne, data, sizeof data), INFER_OK);
    cr_assert_eq(infer_gguf_writer_add_tensor(w, "x.attn\rv.weight", INFER_TYPE_F32, 2, ne, data, sizeof data), INFER_OK);
    cr_assert_eq(infer_gguf_writer_write_file(w, odd, &err), INFER_OK, "%s", err.message);
    infer_gguf_writer_free(w);
    const char *a8[] = {odd, q, "Q8_0", "--pure", "--tensor-type", "attn.v=q4_0", NULL};
    g = quantize_ok(dir, a8);
    cr_expect_eq(type_of(g, "x.attn_v.weight"), INFER_TYPE_Q4_0);
    cr_expect_eq(type_of(g, "x.attn\rv.weight"), INFER_TYPE_Q8_0, "'.' matched \\r");
    infer_gguf_close(g);

    /* --tensor-type-file: its words in order, where it stands among the
     * options; a file that cannot be read or holds a NUL, or a bad word, is
     * a usage error */
    char tf[600];
    snprintf(tf, sizeof tf, "%s/types.txt", dir);
    FILE *f = fopen(tf, "w");
    cr_assert_not_null(f);
    fputs("  blk\\.0\\.attn_q=f16\n\tattn_q=q8_0  \r\n", f);
    fclose(f);
    const char *a11[] = {f16, q, "Q4_K_M", "--tensor-type", "blk\\.1\\.attn_q=q5_0", "--tensor-type-file", tf, NULL};
    g = quantize_ok(dir, a11);
    cr_expect_eq(type_of(g, "blk.0.attn_q.weight"), INFER_TYPE_F16);
    cr_expect_eq(type_of(g, "blk.1.attn_q.weight"), INFER_TYPE_Q5_0, "the command line's option came first");
    infer_gguf_close(g);
    f = fopen(tf, "w");
    cr_assert_not_null(f);
    fputs("attn_q=q8_0 attn_k=q9_0\n", f);
    fclose(f);
    const char *a12[] = {small, q, "Q8_0", "--tensor-type-file", tf, NULL};
    cr_expect_eq(run_tool("infer-quantize", dir, a12), 1);
    e = tool_stderr(dir);
    cr_expect(strstr(e, "attn_k=q9_0: unknown type") != NULL, "%s", e);
    free(e);
    f = fopen(tf, "w");
    cr_assert_not_null(f);
    fwrite("attn_q=q8_0\0 x", 1, 15, f);
    fclose(f);
    cr_expect_eq(run_tool("infer-quantize", dir, a12), 1);
    e = tool_stderr(dir);
    cr_expect(strstr(e, "holds a NUL byte") != NULL, "%s", e);
    free(e);
    remove(tf);
    cr_expect_eq(run_tool("infer-quantize", dir, a12), 1);
    e = tool_stderr(dir);
    cr_expect(strstr(e, "cannot open") != NULL, "%s", e);
    free(e);

    /* usage errors: exit 1, saying what is wrong; so is a pattern that
     * cannot be matched within PCRE2's limits */
    static const struct {
        const char *arg, *says;
    } bad[] = {
        {"attn_(=q8_0", "bad pattern"},    {"attn_q=q9_0", "unknown type"}, {"=q8_0", "PATTERN=TYPE"},
        {"attn_q=", "PATTERN=TYPE"},       {"attn_q", "PATTERN=TYPE"},
        {"^(.|.|.)*a$=q4_0", "could not be matched"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        const char *a9[] = {small, q, "Q8_0", "--tensor-type", bad[k].arg, NULL};
        cr_expect_eq(run_tool("infer-quantize", dir, a9), 1, "%s", bad[k].arg);
        e = tool_stderr(dir);
        cr_expect(strstr(e, bad[k].says) != NULL, "%s: %s", bad[k].arg, e);
        free(e);
    }
    const char *a10[] = {small, q, "Q8_0", "--tensor-type", NULL};
    cr_expect_eq(run_tool("infer-quantize", dir, a10), 1);
    remove_dir(dir);
}

Test(quantize_synth, tied_embeddings_take_the_output_rules) {
    /* infer-synth --tied writes no output.weight; infer-quantize then gives
     * token_embd the output's rules (Q6_K in a mixture, or
     * --output-tensor-type), unless --token-embedding-type names it. The
     * quantized model loads and decodes. (Checked byte for byte against
     * llama-quantize, outside the repository, in seven combinations.) */
    char dir[64], f16[600], q[600];
    temp_dir(dir, sizeof dir);
    snprintf(f16, sizeof f16, "%s/f16.gguf", dir);
    snprintf(q, sizeof q, "%s/q.gguf", dir);
    const char *sargs[] = {f16, "--n-embd", "256", "--n-layer", "2", "--n-ff", "256", "--type", "F16", "--tied", NULL};
    tool_ok("infer-synth", dir, sargs);
    infer_gguf *g = test_open_gguf(f16);
    cr_expect_lt(infer_gguf_find_tensor(g, "output.weight"), 0, "--tied: no output.weight");
    infer_gguf_close(g);
    static const struct {
        const char *args[6]; /* TYPE and options, NULL-terminated */
        uint32_t embd;
    } cases[] = {
        {{"Q4_K_M", NULL}, INFER_TYPE_Q6_K},
        {{"Q4_0", "--output-tensor-type", "q8_0", NULL}, INFER_TYPE_Q8_0},
        {{"Q4_K_M", "--output-tensor-type", "q8_0", "--token-embedding-type", "q5_0", NULL}, INFER_TYPE_Q5_0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const char *a[8] = {f16, q};
        for (int i = 0; i < 6 && cases[k].args[i]; i++) a[2 + i] = cases[k].args[i];
        g = quantize_ok(dir, a);
        cr_expect_eq(type_of(g, "token_embd.weight"), cases[k].embd, "case %zu: %s", k,
                     infer_type_name(type_of(g, "token_embd.weight")));
        infer_gguf_close(g);
        const int32_t prompt[] = {1, 290, 17};
        int32_t gen[4];
        free(decode_greedy(q, prompt, 3, 4, gen));
    }
    remove_dir(dir);
}

Test(quantize_synth, tensors_written_in_llama_quantize_order) {
    /* llama-quantize writes the tensors in its loader's order: those
     * outside "blk.N." by name, then layer by layer in number order (blk.2
     * before blk.10), each layer's by name; infer-synth writes them layer
     * by layer in the llama order. F16 to F16 copies every tensor, so each
     * must carry its own bytes to its new place. */
    char dir[64], f16[600], q[600];
    temp_dir(dir, sizeof dir);
    synth_f16(dir, "f16.gguf", f16, "12", "2", "256", "300");
    snprintf(q, sizeof q, "%s/q.gguf", dir);
    const char *args[] = {f16, q, "F16", NULL};
    infer_gguf *out = quantize_ok(dir, args), *in = test_open_gguf(f16);
    static const char *const top[] = {"output.weight", "output_norm.weight", "token_embd.weight"};
    static const char *const layer[] = {"attn_k", "attn_norm", "attn_output", "attn_q", "attn_v",
                                        "ffn_down", "ffn_gate", "ffn_norm", "ffn_up"};
    cr_assert_eq(infer_gguf_tensor_count(out), 3 + 12 * 9);
    cr_assert_eq(infer_gguf_tensor_count(in), 3 + 12 * 9);
    for (uint64_t i = 0; i < infer_gguf_tensor_count(out); i++) {
        char want[64], name[INFER_GGUF_MAX_NAME + 1];
        if (i < 3) snprintf(want, sizeof want, "%s", top[i]);
        else snprintf(want, sizeof want, "blk.%llu.%s.weight", (unsigned long long)(i - 3) / 9, layer[(i - 3) % 9]);
        const infer_gguf_tensor *u = infer_gguf_tensor_at(out, i);
        test_tensor_name(u, name);
        cr_assert_str_eq(name, want, "tensor %llu", (unsigned long long)i);
        const infer_gguf_tensor *t = test_same_named(in, u, name, "input");
        cr_expect(t->type == u->type && t->n_bytes == u->n_bytes && !memcmp(t->data, u->data, t->n_bytes),
                  "%s: not the input's bytes", name);
    }
    infer_gguf_close(in);
    infer_gguf_close(out);
    remove_dir(dir);
}

/* ======================= llama-quantize's command line ============================ */

/* The key at index i of g is key. */
static void expect_key_at(infer_gguf *g, uint64_t i, const char *key) {
    cr_assert_lt(i, infer_gguf_kv_count(g), "no key %llu (%s)", (unsigned long long)i, key);
    infer_gguf_str k = infer_gguf_kv_key(g, i);
    cr_expect(k.len == strlen(key) && !memcmp(k.ptr, key, k.len), "key %llu is %.*s, not %s", (unsigned long long)i,
              (int)k.len, k.ptr, key);
}

/* infer-quantize args exits 1 (a usage error) saying says, and writes
 * neither OUT (when named) nor a default output in dir. */
static void expect_usage_error(const char *dir, const char *const *args, const char *out, const char *says) {
    expect_exit(dir, args, 1, out, says);
}

Test(quantize_synth, llama_quantize_arguments_accepted, .timeout = TEST_TIMEOUT) {
    /* IN [OUT] TYPE [NTHREADS]: TYPE by llama.cpp's number, NTHREADS last,
     * OUT left out (ggml-model-NAME.gguf beside IN, NAME as llama-quantize
     * names the type: Q4_K for 15), options first, --allow-requantize */
    char dir[64], f16[600], a[600], b[600], def[600];
    temp_dir(dir, sizeof dir);
    synth_f16(dir, "f16.gguf", f16, "2", "2", "256", "300");
    snprintf(a, sizeof a, "%s/a.gguf", dir);
    snprintf(b, sizeof b, "%s/b.gguf", dir);
    const char *by_name[] = {f16, a, "q4_0", "-t", "2", NULL};
    tool_ok("infer-quantize", dir, by_name);
    const char *by_number[] = {"--allow-requantize", f16, b, "2", "1", NULL};
    tool_ok("infer-quantize", dir, by_number);
    expect_same_file("TYPE 2 and NTHREADS 1 against q4_0 and -t 2", b, a);
    static const struct {
        const char *type, *file;
        uint32_t ftype, attn_q;
    } defaults[] = {{"q8_0", "ggml-model-Q8_0.gguf", 7, INFER_TYPE_Q8_0},
                    {"15", "ggml-model-Q4_K.gguf", 15, INFER_TYPE_Q4_K},
                    {"14", "ggml-model-Q4_K_S.gguf", 14, INFER_TYPE_Q4_K}};
    for (size_t k = 0; k < sizeof defaults / sizeof *defaults; k++) {
        const char *args[] = {f16, defaults[k].type, "2", NULL};
        tool_ok("infer-quantize", dir, args);
        snprintf(def, sizeof def, "%s/%s", dir, defaults[k].file);
        infer_gguf *g = test_open_gguf(def);
        uint32_t ft = 0;
        cr_expect_eq(infer_gguf_get_u32(g, "general.file_type", &ft, NULL), INFER_OK);
        cr_expect_eq(ft, defaults[k].ftype, "%s: file type %u", defaults[k].type, ft);
        cr_expect_eq(type_of(g, "blk.0.attn_q.weight"), defaults[k].attn_q, "%s", defaults[k].type);
        infer_gguf_close(g);
        remove(def);
    }
    /* refusals: exit 1, nothing written */
    remove(a);
    const char *iq[] = {f16, "IQ4_NL", NULL};
    expect_usage_error(dir, iq, NULL, "unsupported (llama-quantize's, not written here) type 'IQ4_NL'");
    snprintf(def, sizeof def, "%s/ggml-model-IQ4_NL.gguf", dir);
    cr_expect_neq(access(def, F_OK), 0);
    const char *five[] = {f16, a, "5", NULL}; /* a removed type's number */
    expect_usage_error(dir, five, a, "unknown type '5'");
    const char *bad_threads[] = {f16, a, "Q4_0", "4x", NULL};
    expect_usage_error(dir, bad_threads, a, "invalid NTHREADS '4x'");
    const char *twice[] = {f16, a, "Q4_0", "2", "-t", "2", NULL};
    expect_usage_error(dir, twice, a, "threads given twice");
    const char *extra[] = {f16, a, "Q4_0", "2", "3", NULL};
    expect_usage_error(dir, extra, a, "usage:");
    const char *no_type[] = {f16, a, NULL};
    expect_usage_error(dir, no_type, a, "missing TYPE");
    const char *alone[] = {f16, NULL};
    expect_usage_error(dir, alone, NULL, "usage:");
    remove_dir(dir);
}

Test(quantize_synth, override_kv_sets_metadata_as_llama_quantize, .timeout = TEST_TIMEOUT) {
    /* --override-kv KEY=TYPE:VALUE: after the copied keys,
     * general.quantization_version and general.file_type come the
     * overrides in order, each replacing a key of its name set before it
     * (llama.cpp's gguf_set_val_* removes and appends): an input key moves
     * to the end, a repeated key keeps its last value and place. int is
     * stored as INT32, float as FLOAT32. (Checked byte for byte against
     * llama-quantize, outside the repository, in twelve such cases.) */
    char dir[64], f16[600], q[600];
    temp_dir(dir, sizeof dir);
    synth_f16(dir, "f16.gguf", f16, "2", "2", "256", "300");
    snprintf(q, sizeof q, "%s/q.gguf", dir);
    infer_gguf *in = test_open_gguf(f16);
    const uint64_t n_in = infer_gguf_kv_count(in);
    cr_assert_geq(infer_gguf_find_key(in, "general.name"), 0);
    infer_gguf_close(in);
    const char *args[] = {f16, q, "Q8_0", "--override-kv", "my.int=int:-42", "--override-kv", "general.name=str:renamed",
                          "--override-kv", "my.f=float:1.5e-3", "--override-kv", "my.b=bool:true",
                          "--override-kv", "my.int=int:7", "--override-kv", "general.file_type=int:99", NULL};
    infer_gguf *g = quantize_ok(dir, args);
    /* n_in - 1 copied (general.name moves), then quantization_version,
     * then general.name, my.f, my.b, my.int, general.file_type */
    cr_assert_eq(infer_gguf_kv_count(g), n_in - 1 + 6);
    const uint64_t tail = n_in - 1;
    expect_key_at(g, tail, "general.quantization_version");
    expect_key_at(g, tail + 1, "general.name");
    expect_key_at(g, tail + 2, "my.f");
    expect_key_at(g, tail + 3, "my.b");
    expect_key_at(g, tail + 4, "my.int");
    expect_key_at(g, tail + 5, "general.file_type");
    int32_t i = 0;
    float f = 0;
    int b = 0;
    infer_gguf_str s;
    cr_expect_eq(infer_gguf_get_i32(g, "my.int", &i, NULL), INFER_OK);
    cr_expect_eq(i, 7);
    cr_expect_eq(infer_gguf_get_f32(g, "my.f", &f, NULL), INFER_OK);
    cr_expect_eq(f, 1.5e-3f);
    cr_expect_eq(infer_gguf_get_bool(g, "my.b", &b, NULL), INFER_OK);
    cr_expect_eq(b, 1);
    cr_expect_eq(infer_gguf_get_str(g, "general.name", &s, NULL), INFER_OK);
    cr_expect(s.len == 7 && !memcmp(s.ptr, "renamed", 7));
    cr_expect_eq(infer_gguf_get_i32(g, "general.file_type", &i, NULL), INFER_OK, "general.file_type: INT32 now");
    cr_expect_eq(i, 99);
    cr_expect_eq(type_of(g, "blk.0.attn_q.weight"), INFER_TYPE_Q8_0, "the override changes the metadata only");
    infer_gguf_close(g);
    remove(q);
    /* refused (exit 1, no file): where llama-quantize would store another
     * value than the one given, or a key it aborts on */
    char long_key[140], long_str[140];
    memset(long_key, 'k', 128);
    memcpy(long_key + 128, "=int:1", 7);
    memcpy(long_str, "s=str:", 6);
    memset(long_str + 6, 'x', 128);
    long_str[134] = '\0';
    static const char *const bad[] = {"noequals", "=int:1", "k=int:abc", "k=int:2147483648", "k=int:1.5",
                                      "k=float:x", "k=bool:yes", "k=bool:True", "k=u32:1", "general.alignment=int:64"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad + 2; k++) {
        const char *arg = k < sizeof bad / sizeof *bad ? bad[k] : k == sizeof bad / sizeof *bad ? long_key : long_str;
        const char *a[] = {f16, q, "Q8_0", "--override-kv", arg, NULL};
        expect_usage_error(dir, a, q, "--override-kv");
    }
    const char *a_end[] = {f16, q, "Q8_0", "--override-kv", NULL};
    expect_usage_error(dir, a_end, q, "--override-kv wants KEY=TYPE:VALUE");
    remove_dir(dir);
}
