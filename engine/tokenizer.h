/*
 * tokenizer.h - Hugging Face tokenizer.json tokenizers (BPE: byte-level as in
 * Qwen / Llama 3, SentencePiece-style with byte fallback as in Llama 2 /
 * Mistral / Gemma), with added tokens, normalizers, pre-tokenizers,
 * post-processor and decoders, plus incremental detokenization.
 *
 * Thread-safety: a `struct tokenizer` is immutable after tok_load() (except
 * tok_add_eos_id(), which must be called before the handle is shared), so any
 * number of threads may encode/decode with one handle at once.  A
 * `struct tok_stream` belongs to one thread at a time.
 *
 * Ownership: the caller owns handles returned by tok_load*() and
 * tok_stream_new() and frees them with tok_free() / tok_stream_free().
 * Arrays and strings returned through out-parameters are malloc()ed and
 * owned by the caller (free()).  Strings returned by accessors belong to the
 * tokenizer and live as long as it does.  tokenizer.json and
 * tokenizer_config.json are untrusted: malformed input is an error status
 * with a message, never a crash.
 */
#ifndef ENGINE_TOKENIZER_H
#define ENGINE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct tokenizer;
struct tok_stream;

/* Flags of tok_encode(). */
enum tok_encode_flags {
    /* Apply the post-processor (e.g. prepend BOS), as HF add_special_tokens. */
    TOK_ENCODE_ADD_SPECIAL = 1 << 0,
    /*
     * Recognise special added tokens ("<|im_start|>", "<s>") written in the
     * text, as HF does by default.  Without it they are tokenized as plain
     * text (for untrusted user content); non-special added tokens are always
     * recognised.
     */
    TOK_ENCODE_PARSE_SPECIAL = 1 << 1,
};

/*
 * Loads dir/tokenizer.json and (if present) dir/tokenizer_config.json.
 * Returns ST_OK and *out, or ST_ERR_IO (unreadable), ST_ERR_FORMAT
 * (malformed), ST_ERR_UNSUPPORTED (a model/normalizer/... type this engine
 * does not implement), ST_ERR_NOMEM, with a message in err.
 */
enum status tok_load(const char *dir, struct tokenizer **out, char *err, size_t errlen);

/*
 * Same from memory: `json` is the tokenizer.json text, `config` the
 * tokenizer_config.json text or NULL.  Neither needs a terminating NUL.
 */
enum status tok_load_from_memory(const char *json, size_t json_len, const char *config,
                                 size_t config_len, struct tokenizer **out, char *err,
                                 size_t errlen);

void tok_free(struct tokenizer *tok);

/*
 * Encodes `len` bytes of UTF-8 text.  On ST_OK *ids is a malloc()ed array of
 * *n_ids ids (non-NULL even when empty).  Returns ST_ERR_INVALID when the
 * text is not valid UTF-8.
 */
enum status tok_encode(const struct tokenizer *tok, const char *text, size_t len, unsigned flags,
                       int32_t **ids, size_t *n_ids);

/*
 * Decodes ids to a malloc()ed, NUL-terminated UTF-8 string, applying the
 * decoder and tokenizer_config's clean_up_tokenization_spaces.  With
 * skip_special, special added tokens are left out.  Returns ST_ERR_RANGE for
 * an id outside the vocabulary.
 */
enum status tok_decode(const struct tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                       char **text);

/* Same without clean-up: the raw decoder output (what a stream produces). */
enum status tok_decode_raw(const struct tokenizer *tok, const int32_t *ids, size_t n,
                           int skip_special, char **text);

/* ---- accessors ---------------------------------------------------------- */

/* One more than the largest id (vocabulary and added tokens). */
int32_t tok_vocab_size(const struct tokenizer *tok);
/* The token string of id (NUL-terminated), or NULL if id has none. */
const char *tok_id_to_token(const struct tokenizer *tok, int32_t id);
/* The id of an exact token string (added tokens first), or -1. */
int32_t tok_token_to_id(const struct tokenizer *tok, const char *token, size_t len);
/* Whether id is a special added token (skipped by skip_special). */
int tok_is_special(const struct tokenizer *tok, int32_t id);
/* BOS id from tokenizer_config.json bos_token, or -1. */
int32_t tok_bos_id(const struct tokenizer *tok);
/* Whether encoding with TOK_ENCODE_ADD_SPECIAL puts BOS first. */
int tok_adds_bos(const struct tokenizer *tok);
/* bos_token / eos_token strings of tokenizer_config.json ("" when absent). */
const char *tok_bos_token(const struct tokenizer *tok);
const char *tok_eos_token(const struct tokenizer *tok);
/* The EOS ids: eos_token of tokenizer_config.json plus those added later. */
size_t tok_eos_ids(const struct tokenizer *tok, const int32_t **ids);
int tok_is_eos(const struct tokenizer *tok, int32_t id);
/*
 * Adds an EOS id (e.g. from generation_config.json); duplicates are ignored.
 * Not thread-safe: call before sharing the handle.  ST_ERR_RANGE for an id
 * outside the vocabulary.
 */
enum status tok_add_eos_id(struct tokenizer *tok, int32_t id);

/* ---- incremental detokenization ------------------------------------------ */

/*
 * A stream turns ids into text one at a time and only ever emits complete
 * UTF-8 characters; the concatenation of everything it emits (including
 * tok_stream_flush()) equals tok_decode_raw() of all ids pushed.
 */
enum status tok_stream_new(const struct tokenizer *tok, int skip_special, struct tok_stream **out);
void tok_stream_free(struct tok_stream *s);
/*
 * Pushes one id.  On ST_OK *text points to the newly completed text
 * (NUL-terminated, possibly "") and *len to its length; the pointer is valid
 * until the next call on the stream.
 */
enum status tok_stream_push(struct tok_stream *s, int32_t id, const char **text, size_t *len);
/* Emits whatever is still held back (e.g. an incomplete byte sequence, as U+FFFD). */
enum status tok_stream_flush(struct tok_stream *s, const char **text, size_t *len);

#endif
