/*
 * vocab_regex.c - the BPE pre-tokenizer: tokenizer.ggml.pre names a list of
 * regexes that llama.cpp applies in sequence, each one splitting the pieces
 * the previous one left (matches and the gaps between them both become
 * pieces). We run them with PCRE2 (UTF + UCP), compiled once at load.
 *
 * How llama.cpp's own matching is reproduced:
 *  - Text is decoded to code points leniently, as llama.cpp does: a byte
 *    that does not start a well-formed sequence becomes U+FFFD.
 *  - llama.cpp matches \s against its own whitespace table by replacing
 *    every non-ASCII whitespace code point with U+000B before matching; we
 *    give PCRE2 the same substituted text (so \s means exactly that table,
 *    and a literal U+3000 in a class never matches, as in llama.cpp).
 *  - Surrogate code points (which PCRE2 cannot take) are matched as U+E000,
 *    another "other" (C) code point; the output keeps the original.
 *  - ECMAScript's $ is end-of-subject only: PCRE2_DOLLAR_ENDONLY.
 *  - Each piece is a separate subject, as in llama.cpp.
 *  - llama.cpp's category rewrite leaves ASCII '~' out of \p{S}; the
 *    regexes that use \p{S} spell that out.
 * Where PCRE2's Unicode tables (its Unicode version) differ from llama.cpp's,
 * code points assigned after PCRE2's version may be classified differently.
 */
#include "vocab_internal.h"

#include <string.h>

/* ---- the regex sets (from the models' tokenizer.json, as llama.cpp lists
 * them for each tokenizer.ggml.pre) ---------------------------------------- */

#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define TAIL_WS "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define LLAMA3 CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" TAIL_WS
#define QWEN2 CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" TAIL_WS
#define CJK_LLM "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
#define PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"
/* llama.cpp's case-split words: "upper" = a letter that is not a-z, "lower"
 * = a letter that is not A-Z (so non-ASCII letters are both). Written as
 * character classes rather than llama.cpp's (?=\p{L})[^a-z] groups: the
 * same sets, without a backtracking frame per character. */
#define UP "[^\\P{L}a-z]"
#define LO "[^\\P{L}A-Z]"
#define UPPER_LOWER(up, lo, tail)                                                            \
    "[^\\r\\n\\p{L}\\p{N}]?" up "*" lo "+" tail "|[^\\r\\n\\p{L}\\p{N}]?" up "+" lo "*" tail
/* granite adds marks to both sets (never a-z or A-Z) */
#define UPM "(?:[^\\P{L}a-z]|\\p{M})"
#define LOM "(?:[^\\P{L}A-Z]|\\p{M})"

static const char *const re_default[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+",
                                         "[0-9][0-9][0-9]", NULL};
static const char *const re_gpt2[] = {GPT2, NULL};
static const char *const re_llama3[] = {LLAMA3, NULL};
static const char *const re_jais2[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                 "|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)"
                 "|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}",
    NULL};
static const char *const re_deepseek_llm[] = {
    "[\\r\\n]",
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
    "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}"
    "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}"
    "\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}"
    "\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"
    "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}"
    "\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"
    "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}"
    "\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}"
    "\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}"
    "\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}"
    "\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"
    "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}"
    "\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    CJK_LLM,
    "\\p{N}+",
    NULL};
static const char *const re_deepseek_coder[] = {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", CJK_LLM,
                                                "\\p{N}", NULL};
static const char *const re_deepseek3[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
    "|(?:~|[^\\r\\n\\p{L}\\p{P}\\p{S}])?[\\p{L}\\p{M}]+"
    "| ?(?:(?!~)[\\p{P}\\p{S}])+[\\r\\n]*" TAIL_WS,
    NULL};
static const char *const re_falcon[] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2, "[0-9][0-9][0-9]", NULL};
static const char *const re_starcoder[] = {"\\p{N}", GPT2, NULL};
static const char *const re_qwen2[] = {QWEN2, NULL};
static const char *const re_qwen35[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*" TAIL_WS,
    NULL};
static const char *const re_poro[] = {PORO, NULL};
static const char *const re_viking[] = {PORO, "\\p{N}", NULL};
static const char *const re_tekken[] = {
    UPPER_LOWER(UP, LO, "") "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*" TAIL_WS, NULL};
static const char *const re_gpt4o[] = {
    UPPER_LOWER(UP, LO, CONTRACTIONS "?") "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*" TAIL_WS, NULL};
static const char *const re_granite_emb[] = {
    UPPER_LOWER(UPM, LOM, CONTRACTIONS "?") "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*" TAIL_WS, NULL};
static const char *const re_seed_coder[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+" TAIL_WS, NULL};
static const char *const re_bailingmoe[] = {
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_ufakzeka[] = {
    "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" TAIL_WS, NULL};
static const char *const re_laguna[] = {"[^\\n]+|[\\n]+", QWEN2, NULL};
static const char *const re_exaone_moe[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}"
                 "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_minicpm5[] = {
    "\\p{N}{1,3}",
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" TAIL_WS, NULL};
static const char *const re_chameleon[] = {"<sentinel:[0-9]+>",
                                           "(?:IMGIMG)(?:(?:A|B|C|D|E|F|G|H|I){1,4})Z",
                                           "(?:[\\t\\n]|    |  )",
                                           "\\p{N}",
                                           "[\\p{P}!-/:-@\\[-`{-~]",
                                           GPT2,
                                           NULL};

enum { PRE_IGNORE_MERGES = 1, PRE_ADD_BOS = 2, PRE_NO_BOS = 4 };

typedef struct {
    const char *names; /* '|'-separated values of tokenizer.ggml.pre */
    const char *const *re;
    unsigned flags;
} pre_def;

static const pre_def pre_defs[] = {
    {"default", re_default, 0},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano", re_llama3,
     PRE_IGNORE_MERGES | PRE_ADD_BOS},
    {"dbrx|smaug-bpe", re_llama3, 0},
    {"glm4|chatglm-bpe", re_llama3, PRE_NO_BOS},
    {"jais-2", re_jais2, 0},
    {"deepseek-llm", re_deepseek_llm, 0},
    {"deepseek-coder", re_deepseek_coder, 0},
    {"deepseek-v3|hunyuan-dense|joyai-llm|hy_v4", re_deepseek3, 0},
    {"falcon", re_falcon, 0},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b|mellum2", re_starcoder, 0},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|"
     "exaone4|jina-v1-en|jina-v2-code|roberta-bpe|mpt|olmo|jais|trillion|granite-docling",
     re_gpt2, 0},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|megrez|stablelm2|hunyuan|solar-open|grok-2", re_qwen2, 0},
    {"qwen35", re_qwen35, 0},
    {"poro-chat|bloom|gpt3-finnish", re_poro, 0},
    {"viking", re_viking, 0},
    {"tekken", re_tekken, PRE_IGNORE_MERGES | PRE_ADD_BOS},
    {"gpt-4o|llama4|kanana2|talkie|minimax-m2", re_gpt4o, 0},
    {"granite-embed-multi-97m", re_granite_emb, PRE_IGNORE_MERGES},
    {"seed-coder", re_seed_coder, 0},
    {"bailingmoe|bailingmoe2|llada-moe", re_bailingmoe, 0},
    {"ufakzeka", re_ufakzeka, 0},
    {"laguna", re_laguna, 0},
    {"exaone-moe", re_exaone_moe, 0},
    {"minicpm5", re_minicpm5, PRE_IGNORE_MERGES},
    {"chameleon", re_chameleon, PRE_ADD_BOS},
};

/* 1 when name[0..n) is one of the '|'-separated names. */
static int names_have(const char *names, const char *name, size_t n) {
    const char *p = names;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

void vocab_regex_free(vocab_regex *re) {
    for (int i = 0; i < re->n; i++) pcre2_code_free(re->code[i]);
    pcre2_match_context_free(re->mctx);
    pcre2_general_context_free(re->gctx);
    memset(re, 0, sizeof *re);
}

infer_status vocab_regex_init(infer_vocab *v, const char *pre, size_t pre_len, int *add_bos,
                              int *bos_none, infer_error *err) {
    const pre_def *def = NULL;
    vocab_regex *re = &v->re;
    pcre2_compile_context *cctx = NULL;
    infer_status s = INFER_OK;

    if (pre_len == 0) {
        def = &pre_defs[0]; /* absent: llama.cpp warns and uses "default" */
    } else {
        for (size_t i = 0; i < sizeof pre_defs / sizeof pre_defs[0] && !def; i++) {
            if (names_have(pre_defs[i].names, pre, pre_len)) def = &pre_defs[i];
        }
    }
    if (!def) {
        char q[96];
        return set_error(err, INFER_EUNSUPPORTED,
                         "tokenizer.ggml.pre '%s' is not a pre-tokenizer infer supports",
                         escape_bytes(pre, pre_len, q, sizeof q));
    }
    v->ignore_merges = (def->flags & PRE_IGNORE_MERGES) != 0;
    if (def->flags & PRE_ADD_BOS) *add_bos = 1;
    if (def->flags & PRE_NO_BOS) *bos_none = 1;

    /* PCRE2 allocates through infer_malloc, so failure injection reaches it */
    re->gctx = pcre2_general_context_create(infer_malloc_ud, infer_free_ud, NULL);
    if (!re->gctx) goto nomem;
    re->mctx = pcre2_match_context_create(re->gctx);
    cctx = pcre2_compile_context_create(re->gctx);
    if (!re->mctx || !cctx) goto nomem;
    /* Bounds on one pcre2_match call: a pathological text fails cleanly
     * instead of running for minutes or eating memory. */
    pcre2_set_match_limit(re->mctx, 50u * 1000 * 1000);
    pcre2_set_heap_limit(re->mctx, 256u * 1024); /* KiB */

    for (int i = 0; def->re[i]; i++) {
        int ec;
        PCRE2_SIZE eo;
        if (i >= VOCAB_MAX_REGEX) {
            s = set_error(err, INFER_EUNSUPPORTED, "pre-tokenizer has too many regexes");
            goto out;
        }
        pcre2_code *code = pcre2_compile((PCRE2_SPTR)def->re[i], PCRE2_ZERO_TERMINATED,
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eo, cctx);
        if (!code) {
            if (ec == PCRE2_ERROR_HEAP_FAILED || ec == PCRE2_ERROR_NOMEMORY) goto nomem;
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(ec, msg, sizeof msg);
            s = set_error(err, INFER_EUNSUPPORTED, "pre-tokenizer regex %d: %s at %zu", i,
                          (const char *)msg, (size_t)eo);
            goto out;
        }
        re->code[re->n++] = code;
        /* JIT when the platform has it; the interpreter otherwise. */
        (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    }
    goto out;
nomem:
    s = set_error(err, INFER_ENOMEM, "out of memory compiling the pre-tokenizer");
out:
    pcre2_compile_context_free(cctx);
    if (s != INFER_OK) vocab_regex_free(re);
    return s;
}

/* ---- splitting ---------------------------------------------------------- */

/* Decode one code point llama.cpp's way (no overlong or surrogate checks);
 * -1 when s[i..] does not start a well-formed sequence. */
int64_t vocab_utf8_decode(const unsigned char *s, size_t n, size_t i, size_t *adv) {
    unsigned char c = s[i];
    *adv = 1;
    size_t need;
    uint32_t cp;
    if (c < 0x80) {
        *adv = 1;
        return c;
    }
    if (!(c & 0x40)) return -1;
    if (!(c & 0x20)) need = 2, cp = c & 0x1f;
    else if (!(c & 0x10)) need = 3, cp = c & 0x0f;
    else if (!(c & 0x08)) need = 4, cp = c & 0x07;
    else return -1;
    if (n - i < need) return -1;
    for (size_t k = 1; k < need; k++) {
        if ((s[i + k] & 0xc0) != 0x80) return -1;
        cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    *adv = need;
    return cp;
}

size_t vocab_utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* llama.cpp's whitespace table (Unicode White_Space). */
static int is_space_cp(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

typedef struct {
    size_t s, e; /* byte range in the subject */
} seg;

typedef struct {
    seg *a;
    size_t n, cap;
} seg_list;

static int seg_add(seg_list *l, size_t s, size_t e) {
    if (e <= s) return 0;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64, bytes;
        if (ck_mul(nc, sizeof(seg), &bytes)) return -1;
        seg *na = infer_realloc(l->a, bytes);
        if (!na) return -1;
        l->a = na;
        l->cap = nc;
    }
    l->a[l->n++] = (seg){s, e};
    return 0;
}

static infer_status match_error(int rc, infer_error *err) {
    if (rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_HEAPLIMIT) {
        return set_error(err, INFER_ENOMEM, "pre-tokenizer regex ran out of memory");
    }
    PCRE2_UCHAR msg[128];
    pcre2_get_error_message(rc, msg, sizeof msg);
    return set_error(err, INFER_EINVAL, "pre-tokenizer regex failed on this text: %s",
                     (const char *)msg);
}

/* Split every piece of in by code, into out. */
/* What one split call matches with: the shared match context, and a big
 * JIT stack made on first need (a long run of a repeated group). */
typedef struct {
    const vocab_regex *re;
    pcre2_match_data *md;
    pcre2_match_context *big; /* copy of re->mctx with the JIT stack */
    pcre2_jit_stack *stack;
} matcher;

static int run_match(matcher *m, const pcre2_code *code, const char *p, size_t len, size_t pos, uint32_t opts) {
    opts |= PCRE2_NO_UTF_CHECK;
    int rc = pcre2_match(code, (PCRE2_SPTR)p, len, pos, opts, m->md, m->big ? m->big : m->re->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !m->big) {
        m->stack = pcre2_jit_stack_create(64 * 1024, 256u * 1024 * 1024, m->re->gctx);
        m->big = m->stack ? pcre2_match_context_copy(m->re->mctx) : NULL;
        if (!m->big) return PCRE2_ERROR_NOMEMORY;
        pcre2_jit_stack_assign(m->big, NULL, m->stack);
        rc = pcre2_match(code, (PCRE2_SPTR)p, len, pos, opts, m->md, m->big);
    }
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) { /* still too deep: the interpreter, on the heap */
        rc = pcre2_match(code, (PCRE2_SPTR)p, len, pos, opts | PCRE2_NO_JIT, m->md, m->re->mctx);
    }
    return rc;
}

static infer_status split_one(matcher *mt, const pcre2_code *code, const char *subj, const seg_list *in,
                              seg_list *out, infer_error *err) {
    pcre2_match_data *md = mt->md;
    for (size_t k = 0; k < in->n; k++) {
        const char *p = subj + in->a[k].s;
        size_t len = in->a[k].e - in->a[k].s, pos = 0, gap = 0;
        uint32_t opts = 0;
        while (pos <= len) {
            int rc = run_match(mt, code, p, len, pos, opts);
            if (rc == PCRE2_ERROR_NOMATCH) {
                if (!opts) break;
                /* no non-empty match at an empty match's spot: step one char */
                opts = 0;
                pos += vocab_utf8_len((unsigned char)p[pos]);
                continue;
            }
            if (rc < 0) return match_error(rc, err);
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (ms < gap || me < ms || me > len) return match_error(PCRE2_ERROR_INTERNAL, err);
            if (seg_add(out, in->a[k].s + gap, in->a[k].s + ms) ||
                seg_add(out, in->a[k].s + ms, in->a[k].s + me)) {
                return set_error(err, INFER_ENOMEM, "out of memory splitting text");
            }
            gap = pos = me;
            /* after an empty match, ask for a non-empty one at the same spot */
            opts = me == ms ? PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED : 0;
            if (me == ms && me >= len) break;
        }
        if (seg_add(out, in->a[k].s + gap, in->a[k].e)) {
            return set_error(err, INFER_ENOMEM, "out of memory splitting text");
        }
    }
    return INFER_OK;
}

infer_status vocab_regex_split(const vocab_regex *re, const char *text, size_t len,
                               vocab_word_fn word, void *ud, infer_error *err) {
    const unsigned char *t = (const unsigned char *)text;
    uint32_t *cpts = NULL;
    char *subj = NULL;
    size_t n = 0, sl = 0, subj_cap;
    seg_list a = {0}, b = {0};
    pcre2_match_data *md = NULL;
    matcher mt = {re, NULL, NULL, NULL};
    infer_status s = INFER_OK;

    if (len == 0) return INFER_OK;
    /* A code point takes at least one byte of text and at most 3 bytes of
     * subject (an invalid byte becomes U+FFFD). */
    if (ck_mul(len, (size_t)3, &subj_cap)) return set_error(err, INFER_EINVAL, "text too long");
    cpts = infer_malloc_array(len, sizeof *cpts);
    subj = infer_malloc(subj_cap);
    md = pcre2_match_data_create(1, re->gctx);
    if (!cpts || !subj || !md) goto nomem;

    for (size_t i = 0; i < len;) {
        size_t adv = 1;
        int64_t c = vocab_utf8_decode(t, len, i, &adv);
        uint32_t cp = c < 0 || c > 0x10ffff ? 0xfffd : (uint32_t)c, m = cp;
        if (cp >= 0x80 && is_space_cp(cp)) m = 0x0b;
        else if (cp >= 0xd800 && cp <= 0xdfff) m = 0xe000;
        cpts[n++] = cp;
        sl += vocab_utf8_put(subj + sl, m);
        i += adv;
    }

    if (seg_add(&a, 0, sl)) goto nomem;
    mt.md = md;
    for (int r = 0; r < re->n; r++) {
        b.n = 0;
        if ((s = split_one(&mt, re->code[r], subj, &a, &b, err)) != INFER_OK) goto out;
        seg_list tmp = a;
        a = b;
        b = tmp;
    }

    /* Pieces are contiguous and in order: walk the code points alongside. */
    size_t ci = 0;
    for (size_t k = 0; k < a.n && s == INFER_OK; k++) {
        size_t nc = 0;
        for (size_t j = a.a[k].s; j < a.a[k].e; j++) nc += ((unsigned char)subj[j] & 0xc0) != 0x80;
        s = word(ud, cpts + ci, nc);
        ci += nc;
    }
    goto out;
nomem:
    s = set_error(err, INFER_ENOMEM, "out of memory pre-tokenizing %zu bytes", len);
out:
    pcre2_match_context_free(mt.big);
    pcre2_jit_stack_free(mt.stack);
    pcre2_match_data_free(md);
    infer_free(a.a);
    infer_free(b.a);
    infer_free(subj);
    infer_free(cpts);
    return s;
}
