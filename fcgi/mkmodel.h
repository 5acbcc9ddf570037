/*
 * mkmodel.h - the pieces of `mlx-manager mkmodel` (random-weight test
 * models) shared between its files: a Python-json-style pretty printer for
 * the JSON files mlx-lm / transformers write, and the tokenizer files
 * (generated synthetic byte-level BPE, or copied from a real tokenizer).
 *
 * Not thread-safe in any interesting sense: one command, one thread.  The
 * caller owns every argument; returned strings are malloc'ed and owned by
 * the caller.
 */
#ifndef FCGI_MKMODEL_H
#define FCGI_MKMODEL_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "status.h"

/*
 * Prints `item` the way Python's json.dumps(indent=indent, sort_keys=...)
 * does: ", " / ": " separators, one member per line, "{}"/"[]" when empty,
 * non-ASCII text left as UTF-8.  sort_keys sorts the top-level object's
 * keys, and with sort_nested every nested object's too.  Numbers that are
 * whole print as integers; use cJSON_CreateRaw for a float spelled like
 * Python ("1e-05", "10000.0").  Returns a malloc'ed string or NULL on OOM.
 */
char *mkmodel_json_print(const cJSON *item, int indent, bool sort_keys, bool sort_nested);

/* mkmodel_json_print() into dir/name plus a trailing newline when asked. */
enum status mkmodel_json_write(const char *dir, const char *name, const cJSON *item, int indent,
                               bool sort_keys, bool sort_nested, bool newline, char *err,
                               size_t errlen);

/* Which family's special tokens and pre-tokenizer the synthetic tokenizer mimics. */
enum mkmodel_tok_style {
    MKMODEL_TOK_QWEN,   /* Qwen2/3: <|endoftext|>, <|im_start|>, <|im_end|>; no BOS added */
    MKMODEL_TOK_LLAMA3, /* Llama 3: <|begin_of_text|> added in front, ChatML turns */
};

/* The ids config.json and generation_config.json name (-1: none). */
struct mkmodel_tok_ids {
    int bos;     /* bos_token_id */
    int eos;     /* eos_token_id: the end-of-turn token */
    int eos_alt; /* a second stop token for generation_config (-1: none) */
    int pad;     /* pad_token_id (-1: none) */
};

/*
 * Writes tokenizer.json and tokenizer_config.json for a synthetic byte-level
 * BPE tokenizer of exactly vocab_size ids (special tokens included, at the
 * top): the 256 GPT-2 byte tokens, merges learned from a small built-in
 * English text, then synthetic letter-extension merges until full.
 * Deterministic.  Returns ST_ERR_RANGE when vocab_size is too small for the
 * byte tokens plus the special tokens (or absurdly large).
 */
enum status mkmodel_tokenizer_generate(const char *dir, size_t vocab_size,
                                       enum mkmodel_tok_style style, struct mkmodel_tok_ids *ids,
                                       char *err, size_t errlen);

/*
 * Copies a real tokenizer's files (tokenizer.json, tokenizer_config.json
 * and, when present, special_tokens_map.json, chat_template.jinja,
 * generation_config.json, vocab.json, merges.txt, tokenizer.model) from
 * src_dir into dir, checks that every id it uses is below vocab_size, and
 * finds the BOS/EOS/pad ids from tokenizer_config.json.  ST_ERR_NOT_FOUND
 * without tokenizer.json, ST_ERR_FORMAT for unparsable files, ST_ERR_RANGE
 * when the tokenizer needs more ids than vocab_size.
 */
enum status mkmodel_tokenizer_copy(const char *src_dir, const char *dir, size_t vocab_size,
                                   struct mkmodel_tok_ids *ids, char *err, size_t errlen);

#endif
