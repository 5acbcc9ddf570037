/* test_openai_request.c - OpenAI body validation: good bodies parse into
 * the right values, bad ones name the offending param; defaults layer as
 * request > profile > generation_config > OpenAI. */
#include <cJSON.h>
#include <string.h>

#include "harness.h"
#include "openai_request.h"

enum kind { CHAT, COMPLETION, EMBEDDINGS };

static int parse(enum kind k, const char *json, struct openai_request *r, struct openai_error *e,
                 struct arena *a, cJSON **body)
{
    *body = cJSON_Parse(json);
    if (!*body) {
        fprintf(stderr, "bad test JSON: %s\n", json);
        return -2;
    }
    memset(e, 0, sizeof(*e));
    return k == CHAT         ? openai_parse_chat(a, *body, r, e)
           : k == COMPLETION ? openai_parse_completion(a, *body, r, e)
                             : openai_parse_embeddings(a, *body, r, e);
}

/* Parses json once and frees what it made: parse's result, the error in *e
 * and, when json_mode is not NULL, whether the request asks for JSON. */
static int parse_once(enum kind k, const char *json, struct openai_error *e, bool *json_mode)
{
    struct arena a;
    arena_init(&a, 0, 0);
    struct openai_request r;
    cJSON *body;
    int rc = parse(k, json, &r, e, &a, &body);
    if (json_mode)
        *json_mode = rc == 0 && r.json_mode;
    openai_request_free(&r);
    cJSON_Delete(body);
    arena_free(&a);
    return rc;
}

/* The body must be refused with status 400 and this param, and the message
 * must contain `says` unless it is NULL. */
static void bad_says(enum kind k, const char *json, const char *param, const char *says)
{
    struct openai_error e;
    int rc = parse_once(k, json, &e, NULL);
    CHECK_MSG(rc == -1 && e.status == 400 && !strcmp(e.param, param) && e.message[0],
              "%s -> rc %d status %d param '%s' (%s)", json, rc, e.status, e.param, e.message);
    CHECK_MSG(!says || strstr(e.message, says), "%s -> '%s', not '%s'", json, e.message, says);
}

static void bad(enum kind k, const char *json, const char *param)
{
    bad_says(k, json, param, NULL);
}

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_bad_chat(void)
{
    bad(CHAT, "{" MSG "}", "model");
    bad(CHAT, "{\"model\":5," MSG "}", "model");
    bad(CHAT, "{\"model\":\"m\"}", "messages");
    bad(CHAT, "{\"model\":\"m\",\"messages\":[]}", "messages");
    bad(CHAT, "{\"model\":\"m\",\"messages\":{}}", "messages");
    bad(CHAT, "{\"model\":\"m\",\"messages\":[5]}", "messages[0]");
    bad(CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}",
        "messages[0].role");
    bad(CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content");
    bad(CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":7}]}",
        "messages[0].content");
    bad(CHAT,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\","
        "\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}",
        "messages[1].content[0]");
    bad(CHAT,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
        "messages[0].content[0]");
    bad(CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"r\"}]}",
        "messages[0].tool_call_id");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"temperature\":3}", "temperature");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"temperature\":\"hot\"}", "temperature");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"top_p\":1.5}", "top_p");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"max_tokens\":0}", "max_tokens");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"max_tokens\":2.5}", "max_tokens");
    /* limits and values are written out in full, not as 1.67772e+07 */
    bad_says(CHAT, "{\"model\":\"m\"," MSG ",\"max_tokens\":100000000}", "max_tokens",
             "'max_tokens' must be between 1 and 16777216, got 100000000");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"max_completion_tokens\":-1}", "max_completion_tokens");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"response_format\":{\"type\":\"json_schema\"}}",
        "response_format.json_schema");
    bad(CHAT,
        "{\"model\":\"m\"," MSG
        ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{}}}}",
        "response_format.json_schema.name");
    bad(CHAT,
        "{\"model\":\"m\"," MSG ",\"response_format\":{\"type\":\"json_schema\","
        "\"json_schema\":{\"name\":\"x\",\"schema\":\"s\"}}}",
        "response_format.json_schema.schema");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"n\":0}", "n");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"n\":100}", "n");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"stop\":5}", "stop");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"stop\":[\"a\",3]}", "stop[1]");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"stop\":[\"\"]}", "stop[0]");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"logit_bias\":{\"abc\":1}}", "logit_bias");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"logit_bias\":{\"5\":200}}", "logit_bias");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"logprobs\":1}", "logprobs");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"top_logprobs\":3}", "top_logprobs");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"logprobs\":true,\"top_logprobs\":21}", "top_logprobs");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"stream\":\"yes\"}", "stream");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"stream_options\":{\"include_usage\":true}}",
        "stream_options");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"presence_penalty\":-3}", "presence_penalty");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"seed\":1.5}", "seed");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"tools\":{}}", "tools");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"tools\":[{\"type\":\"function\"}]}", "tools[0]");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"tool_choice\":\"required\"}", "tool_choice");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"tool_choice\":\"sometimes\"}", "tool_choice");
    bad(CHAT,
        "{\"model\":\"m\"," MSG
        ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
        "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}}}",
        "tool_choice");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"response_format\":{\"type\":\"xml\"}}",
        "response_format.type");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"chat_template_kwargs\":[1]}", "chat_template_kwargs");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"min_tokens\":10,\"max_tokens\":5}", "min_tokens");
    bad(CHAT, "{\"model\":\"m\"," MSG ",\"user\":42}", "user");
}

static void test_bad_completion_and_embeddings(void)
{
    bad(COMPLETION, "{\"model\":\"m\"}", "prompt");
    bad(COMPLETION, "{\"model\":\"m\",\"prompt\":[]}", "prompt");
    bad(COMPLETION, "{\"model\":\"m\",\"prompt\":[\"a\",{}]}", "prompt[1]");
    bad(COMPLETION, "{\"model\":\"m\",\"prompt\":[1,-2]}", "prompt");
    bad(COMPLETION, "{\"model\":\"m\",\"prompt\":\"a\",\"suffix\":\"b\"}", "suffix");
    bad(COMPLETION, "{\"model\":\"m\",\"prompt\":\"a\",\"logprobs\":6}", "logprobs");
    bad(COMPLETION, "{\"model\":\"m\",\"prompt\":\"a\",\"best_of\":3}", "best_of");
    bad(EMBEDDINGS, "{\"model\":\"m\"}", "input");
    bad(EMBEDDINGS, "{\"model\":\"m\",\"input\":\"\"}", "input");
    bad(EMBEDDINGS, "{\"model\":\"m\",\"input\":\"a\",\"encoding_format\":\"hex\"}",
        "encoding_format");
    bad(EMBEDDINGS, "{\"model\":\"m\",\"input\":\"a\",\"dimensions\":0}", "dimensions");
}

static void test_good_chat(void)
{
    struct arena a;
    arena_init(&a, 0, 0);
    struct openai_request r;
    struct openai_error e;
    cJSON *body;
    int rc = parse(CHAT,
                   "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"be "
                   "nice\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                   "{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"assistant\",\"content\":null,"
                   "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":"
                   "\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]},{\"role\":\"tool\",\"tool_call_id\":"
                   "\"c1\",\"content\":\"42\"}],\"stop\":\"END\",\"n\":2,\"seed\":7,"
                   "\"temperature\":0,\"max_completion_tokens\":9,\"stream\":true,"
                   "\"stream_options\":{\"include_usage\":true},\"logit_bias\":{\"3\":-100},"
                   "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
                   "\"tool_choice\":\"required\",\"response_format\":{\"type\":\"json_object\"},"
                   "\"chat_template_kwargs\":{\"enable_thinking\":false}}",
                   &r, &e, &a, &body);
    CHECK_MSG(rc == 0, "%s", e.message);
    CHECK_STR_EQ(r.model, "m");
    CHECK_INT_EQ(cJSON_GetArraySize(r.messages), 4);
    cJSON *m0 = cJSON_GetArrayItem(r.messages, 0), *m1 = cJSON_GetArrayItem(r.messages, 1);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(m0, "role")), "system");
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(m1, "content")), "a\nb");
    cJSON *call =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(r.messages, 2), "tool_calls"), 0);
    CHECK(cJSON_IsObject(cJSON_GetObjectItem(cJSON_GetObjectItem(call, "function"), "arguments")));
    CHECK_INT_EQ(r.n, 2);
    CHECK_INT_EQ(r.n_stop, 1);
    CHECK_STR_EQ(r.stop[0], "END");
    CHECK(r.stream && r.include_usage && r.json_mode);
    CHECK(r.tool_choice == OPENAI_TOOL_CHOICE_REQUIRED);
    CHECK_INT_EQ((int)r.max_tokens.v, 9);

    /* request > profile > model */
    struct engine_model_info info;
    memset(&info, 0, sizeof(info));
    info.vocab = 100;
    info.defaults.has_top_p = true;
    info.defaults.top_p = 0.5f;
    info.defaults.has_top_k = true;
    info.defaults.top_k = 20;
    cJSON *profile = cJSON_Parse("{\"temperature\":0.7,\"top_k\":5,\"max_tokens\":100,"
                                 "\"system_prompt\":\"SYS\",\"min_p\":null}");
    struct engine_gen_params gp;
    CHECK(openai_gen_params(&r, profile, &info, 1, &gp, &e) == 0);
    CHECK(gp.sampling.temperature == 0.0f); /* the request's */
    CHECK_INT_EQ(gp.sampling.top_k, 5);     /* the profile's */
    CHECK(gp.sampling.top_p == 0.5f);       /* the model's */
    CHECK(gp.has_seed && gp.sampling.seed == 8);
    CHECK_INT_EQ(gp.max_tokens, 9);
    CHECK_INT_EQ(gp.sampling.n_logit_bias, 1);
    /* tool_choice required: decoding forced to a call of one of the tools */
    CHECK(gp.json_object && gp.n_json_tool_names == 1 && !strcmp(gp.json_tool_names[0], "f"));
    info.vocab = 3;
    CHECK(openai_gen_params(&r, profile, &info, 0, &gp, &e) == -1 &&
          !strcmp(e.param, "logit_bias"));

    cJSON *ctx = openai_chat_context(&r, profile);
    const cJSON *sys = cJSON_GetArrayItem(cJSON_GetObjectItem(ctx, "messages"), 0);
    const char *sc = cJSON_GetStringValue(cJSON_GetObjectItem(sys, "content"));
    /* the request's system message wins over the profile's; the tool note is added */
    CHECK(sc && !strncmp(sc, "be nice\n\n", 9) && strstr(sc, "tools"));
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(ctx, "enable_thinking")));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(ctx, "add_generation_prompt")));
    CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(ctx, "tools")), 1);
    cJSON_Delete(ctx);
    cJSON_Delete(profile);
    openai_request_free(&r);
    cJSON_Delete(body);

    /* profile system prompt when the request has none; tool_choice none drops tools */
    rc = parse(CHAT,
               "{\"model\":\"m\"," MSG ",\"tools\":[{\"type\":\"function\",\"function\":{"
               "\"name\":\"f\"}}],\"tool_choice\":\"none\"}",
               &r, &e, &a, &body);
    CHECK(rc == 0);
    profile = cJSON_Parse("{\"system_prompt\":\"SYS\"}");
    ctx = openai_chat_context(&r, profile);
    sys = cJSON_GetArrayItem(cJSON_GetObjectItem(ctx, "messages"), 0);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(sys, "content")), "SYS");
    CHECK(!cJSON_GetObjectItem(ctx, "tools"));
    char *chatml = openai_chatml_prompt(cJSON_GetObjectItem(ctx, "messages"));
    CHECK_STR_EQ(chatml, "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                         "<|im_start|>assistant\n");
    free(chatml);
    cJSON_Delete(ctx);
    cJSON_Delete(profile);
    openai_request_free(&r);
    cJSON_Delete(body);
    arena_free(&a);
}

/* A json_schema response_format with its name (and schema) constrains
 * decoding to JSON like json_object. */
static void test_json_schema_format(void)
{
    struct openai_error e;
    bool json_mode = false;
    int rc = parse_once(CHAT,
                        "{\"model\":\"m\"," MSG ",\"response_format\":{\"type\":\"json_schema\","
                        "\"json_schema\":{\"name\":\"answer\",\"schema\":{\"type\":\"object\"}}}}",
                        &e, &json_mode);
    CHECK_MSG(rc == 0, "%s", e.message);
    CHECK(json_mode);
}

static void test_good_completion(void)
{
    struct arena a;
    arena_init(&a, 0, 0);
    struct openai_request r;
    struct openai_error e;
    cJSON *body;
    CHECK(parse(COMPLETION, "{\"model\":\"m\",\"prompt\":[[1,2],\"x\"],\"logprobs\":2}", &r, &e, &a,
                &body) == 0);
    CHECK_INT_EQ(r.n_inputs, 2);
    CHECK(r.inputs[0].text == NULL && r.inputs[0].n_ids == 2 && r.inputs[0].ids[1] == 2);
    CHECK_STR_EQ(r.inputs[1].text, "x");
    CHECK(r.logprobs && r.top_logprobs == 2);
    cJSON_Delete(body);
    CHECK(parse(EMBEDDINGS,
                "{\"model\":\"m\",\"input\":[5,6,7],\"encoding_format\":\"base64\","
                "\"dimensions\":4}",
                &r, &e, &a, &body) == 0);
    CHECK(r.n_inputs == 1 && r.inputs[0].n_ids == 3 && r.base64 && r.dimensions == 4);
    cJSON_Delete(body);
    struct engine_model_info info;
    memset(&info, 0, sizeof(info));
    info.vocab = 10;
    struct engine_gen_params gp;
    CHECK(parse(COMPLETION, "{\"model\":\"m\",\"prompt\":\"x\"}", &r, &e, &a, &body) == 0);
    CHECK(openai_gen_params(&r, NULL, &info, 0, &gp, &e) == 0);
    CHECK(gp.sampling.temperature == 1.0f && gp.sampling.top_p == 1.0f && !gp.has_seed &&
          gp.max_tokens == 0);
    cJSON_Delete(body);
    arena_free(&a);
}

static void test_status_mapping(void)
{
    struct openai_error e;
    openai_error_from_status(ST_ERR_RANGE, "too long", "messages", &e);
    CHECK(e.status == 400 && !strcmp(e.code, "context_length_exceeded") &&
          !strcmp(e.param, "messages"));
    openai_error_from_status(ST_ERR_INTERNAL, "bug", NULL, &e);
    CHECK(e.status == 500 && e.param[0] == 0);
}

int main(void)
{
    RUN(test_bad_chat);
    RUN(test_bad_completion_and_embeddings);
    RUN(test_good_chat);
    RUN(test_json_schema_format);
    RUN(test_good_completion);
    RUN(test_status_mapping);
    return harness_finish();
}
