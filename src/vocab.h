/*
 * vocab.h - the tokenizer: vocabulary from GGUF metadata, text -> token ids
 * exactly as llama.cpp does, ids -> bytes.
 *
 * Supported tokenizer.ggml.model values: "llama" (SentencePiece-style: scores,
 * byte fallback <0xNN>, space prefix "▁") and "gpt2" (byte-level BPE with
 * merges, pre-tokenizer regexes chosen by tokenizer.ggml.pre). Anything else
 * is rejected with INFER_EUNSUPPORTED naming the key.
 *
 * A vocab is immutable after vocab_load and may be used from any number of
 * threads at once.
 */
#ifndef INFER_VOCAB_H
#define INFER_VOCAB_H

#include "util.h"

typedef struct infer_vocab infer_vocab;

/* Token attributes (from tokenizer.ggml.token_type). */
enum {
    VOCAB_TOKEN_NORMAL = 1,
    VOCAB_TOKEN_UNKNOWN = 2,
    VOCAB_TOKEN_CONTROL = 3,
    VOCAB_TOKEN_USER_DEFINED = 4,
    VOCAB_TOKEN_UNUSED = 5,
    VOCAB_TOKEN_BYTE = 6,
};

/* Build the vocabulary from g's tokenizer.* metadata (copies what it needs:
 * g may be closed afterwards). Validates everything (HOSTILE.md section C):
 * tokens array present and of strings, scores/token_type/merges of the right
 * element type and count, special ids in range (an out-of-range optional id
 * is dropped with no error only where llama.cpp also tolerates it).
 * Works on vocabulary-only files (no tensors). */
infer_status vocab_load(const infer_gguf *g, infer_vocab **out, infer_error *err);
void vocab_free(infer_vocab *v); /* NULL is fine */

int32_t vocab_n_tokens(const infer_vocab *v);
int32_t vocab_bos(const infer_vocab *v);     /* -1 when none */
int32_t vocab_eos(const infer_vocab *v);     /* -1 when none */
int vocab_add_bos(const infer_vocab *v);     /* tokenizer.ggml.add_bos_token or the model's default */
int vocab_add_eos(const infer_vocab *v);
int vocab_is_eog(const infer_vocab *v, int32_t id); /* EOS, EOT, ... : ends generation */

/* Tokenize len bytes of text (any bytes; invalid UTF-8 must not crash).
 * add_special: add BOS (and EOS) as the vocabulary asks.
 * parse_special: recognise control/user-defined token texts in the text.
 * Writes up to cap ids and sets *n_out to the number the text needs; returns
 * INFER_EINVAL with *n_out set when cap is too small (nothing overflows). */
infer_status vocab_tokenize(const infer_vocab *v, const char *text, size_t len, int add_special,
                            int parse_special, int32_t *ids, size_t cap, size_t *n_out,
                            infer_error *err);

/* The bytes token id stands for, as generated text (SentencePiece "▁" ->
 * space, <0xNN> -> the byte, byte-level BPE symbols -> their bytes; control
 * tokens -> nothing unless render_special). Writes up to cap bytes, sets
 * *len to the length needed; INFER_EINVAL for an id out of range or when cap
 * is too small. */
infer_status vocab_token_to_piece(const infer_vocab *v, int32_t id, int render_special, char *buf,
                                  size_t cap, size_t *len);

/* Streaming detokenizer: pieces go in, complete UTF-8 sequences come out,
 * so a multi-byte character split across tokens is never emitted half. */
typedef struct {
    char pending[8];
    size_t n_pending;
} vocab_utf8_stream;

/* Appends piece to the stream; writes the bytes that are now complete to
 * out (cap >= len + 8 always suffices) and returns how many. */
size_t vocab_utf8_stream_push(vocab_utf8_stream *s, const char *piece, size_t len, char *out,
                              size_t cap);
/* What is left at the end (an incomplete sequence, emitted as is). */
size_t vocab_utf8_stream_flush(vocab_utf8_stream *s, char *out, size_t cap);

#endif
