/* test_anthropic_request.c - Anthropic Messages bodies -> template context and
 * generation parameters (and the errors for bad bodies), and generated text ->
 * content blocks and stream events. */
#include "anthropic_output.h"
#include "anthropic_request.h"
#include "harness.h"
#include "http.h"

/* Parsed bodies: requests point into them, so they live until main() ends. */
static cJSON *bodies[256];
static int n_bodies;

static int parse(const char *json, bool count_only, struct anthropic_request *r,
                 struct anthropic_error *err)
{
    cJSON *body = cJSON_Parse(json);
    if (!body || n_bodies == 256) {
        fprintf(stderr, "bad test JSON or too many bodies: %s\n", json);
        cJSON_Delete(body);
        return -2;
    }
    bodies[n_bodies++] = body;
    return anthropic_request_parse(body, count_only, r, err);
}

static char *chat_text(const struct anthropic_request *r)
{
    return cJSON_PrintUnformatted(r->chat);
}

static void test_minimal(void)
{
    struct anthropic_request r;
    struct anthropic_error e;
    CHECK_INT_EQ(parse("{\"model\":\"m\",\"max_tokens\":16,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"hi\"}]}",
                       false, &r, &e),
                 0);
    CHECK_STR_EQ(r.model, "m");
    CHECK_INT_EQ(r.max_tokens, 16);
    CHECK(!r.stream && !r.thinking && !r.tools_shown && !r.prefill);
    char *t = chat_text(&r);
    CHECK_STR_EQ(t, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                    "\"add_generation_prompt\":true,\"enable_thinking\":false}");
    free(t);
    anthropic_request_free(&r);
}

static void test_system_and_blocks(void)
{
    struct anthropic_request r;
    struct anthropic_error e;
    CHECK_INT_EQ(
        parse("{\"model\":\"m\",\"max_tokens\":8,\"system\":[{\"type\":\"text\",\"text\":\"A\","
              "\"cache_control\":{\"type\":\"ephemeral\"}},{\"type\":\"text\",\"text\":\"B\"}],"
              "\"messages\":[{\"role\":\"system\",\"content\":\"C\"},{\"role\":\"user\","
              "\"content\":[{\"type\":\"text\",\"text\":\"x\"},{\"type\":\"text\",\"text\":\"y\","
              "\"cache_control\":{\"type\":\"ephemeral\"}}]}],\"metadata\":{\"user_id\":\"u\"},"
              "\"service_tier\":\"auto\",\"some_beta_field\":[1,2]}",
              false, &r, &e),
        0);
    char *t = chat_text(&r);
    CHECK_STR_EQ(t, "{\"messages\":[{\"role\":\"system\",\"content\":\"A\\n\\nB\\n\\nC\"},"
                    "{\"role\":\"user\",\"content\":\"x\\ny\"}],\"add_generation_prompt\":true,"
                    "\"enable_thinking\":false}");
    free(t);
    /* A profile's system prompt does not replace the request's. */
    cJSON *profile = cJSON_Parse("{\"system_prompt\":\"P\"}");
    CHECK_INT_EQ(anthropic_request_apply_system(&r, profile), 0);
    CHECK_STR_EQ(
        cJSON_GetArrayItem(cJSON_GetObjectItem(r.chat, "messages"), 0)->child->next->valuestring,
        "A\n\nB\n\nC");
    anthropic_request_free(&r);

    CHECK_INT_EQ(parse("{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"q\"}]}",
                       false, &r, &e),
                 0);
    CHECK_INT_EQ(anthropic_request_apply_system(&r, profile), 0);
    t = chat_text(&r);
    CHECK(strstr(t, "[{\"role\":\"system\",\"content\":\"P\"},{\"role\":\"user\"") != NULL);
    free(t);
    anthropic_request_free(&r);
    cJSON_Delete(profile);
}

static void test_tools_and_tool_turns(void)
{
    struct anthropic_request r;
    struct anthropic_error e;
    CHECK_INT_EQ(
        parse("{\"model\":\"m\",\"max_tokens\":8,\"stream\":true,\"tools\":[{\"name\":\"get\","
              "\"description\":\"Get it\",\"input_schema\":{\"type\":\"object\"}},{\"name\":"
              "\"put\",\"input_schema\":{\"type\":\"object\"}}],\"tool_choice\":{\"type\":"
              "\"auto\"},\"messages\":[{\"role\":\"user\",\"content\":\"go\"},{\"role\":"
              "\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\","
              "\"signature\":\"s\"},{\"type\":\"text\",\"text\":\"ok\"},{\"type\":\"tool_use\","
              "\"id\":\"toolu_1\",\"name\":\"get\",\"input\":{\"k\":1}}]},{\"role\":\"user\","
              "\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":["
              "{\"type\":\"text\",\"text\":\"42\"}]},{\"type\":\"text\",\"text\":\"thanks\"}]}]}",
              false, &r, &e),
        0);
    CHECK(r.stream && r.tools_shown);
    char *t = chat_text(&r);
    CHECK_STR_EQ(t,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"go\"},{\"role\":\"assistant\","
                 "\"content\":\"ok\",\"tool_calls\":[{\"function\":{\"name\":\"get\","
                 "\"arguments\":{\"k\":1}},\"id\":\"toolu_1\",\"type\":\"function\"}],"
                 "\"reasoning_content\":\"hmm\"},{\"role\":\"tool\",\"content\":\"42\","
                 "\"tool_call_id\":\"toolu_1\"},{\"role\":\"user\",\"content\":\"thanks\"}],"
                 "\"tools\":[{\"function\":{\"name\":\"get\",\"description\":\"Get it\","
                 "\"parameters\":{\"type\":\"object\"}},\"type\":\"function\"},{\"function\":{"
                 "\"name\":\"put\",\"parameters\":{\"type\":\"object\"}},\"type\":\"function\"}],"
                 "\"add_generation_prompt\":true,\"enable_thinking\":false}");
    free(t);
    anthropic_request_free(&r);

    /* tool_choice "tool" shows only that tool; "none" shows none. */
    CHECK_INT_EQ(parse("{\"model\":\"m\",\"max_tokens\":8,\"tools\":[{\"name\":\"a\","
                       "\"input_schema\":{}},{\"name\":\"b\",\"input_schema\":{}}],"
                       "\"tool_choice\":{\"type\":\"tool\",\"name\":\"b\"},\"messages\":[{"
                       "\"role\":\"user\",\"content\":\"x\"}]}",
                       false, &r, &e),
                 0);
    cJSON *tools = cJSON_GetObjectItem(r.chat, "tools");
    CHECK_INT_EQ(cJSON_GetArraySize(tools), 1);
    CHECK_STR_EQ(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(tools, 0), "function"), "name")
            ->valuestring,
        "b");
    /* ... and decoding is forced to its input object */
    struct engine_gen_params p;
    anthropic_request_gen_params(&r, NULL, NULL, &p);
    CHECK(p.json_object && !p.n_json_tool_names && !strcmp(r.forced_tool, "b"));
    anthropic_request_free(&r);
    /* "any": to a call naming one of the tools shown */
    CHECK_INT_EQ(parse("{\"model\":\"m\",\"max_tokens\":8,\"tools\":[{\"name\":\"a\","
                       "\"input_schema\":{}},{\"name\":\"b\",\"input_schema\":{}}],"
                       "\"tool_choice\":{\"type\":\"any\"},\"messages\":[{"
                       "\"role\":\"user\",\"content\":\"x\"}]}",
                       false, &r, &e),
                 0);
    anthropic_request_gen_params(&r, NULL, NULL, &p);
    CHECK(p.json_object && p.n_json_tool_names == 2 && !strcmp(p.json_tool_names[0], "a") &&
          !strcmp(p.json_tool_names[1], "b") && !r.forced_tool);
    anthropic_request_free(&r);
    /* a name the constraint cannot write is refused */
    CHECK_INT_EQ(parse("{\"model\":\"m\",\"max_tokens\":8,\"tools\":[{\"name\":\"a\\\"b\","
                       "\"input_schema\":{}}],\"tool_choice\":{\"type\":\"any\"},\"messages\":[{"
                       "\"role\":\"user\",\"content\":\"x\"}]}",
                       false, &r, &e),
                 -1);
    CHECK(strstr(e.message, "tools.0.name") != NULL);
    /* tool_choice auto: no constraint */
    CHECK_INT_EQ(
        parse("{\"model\":\"m\",\"max_tokens\":8,\"tools\":[{\"name\":\"a\","
              "\"input_schema\":{}}],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
              false, &r, &e),
        0);
    anthropic_request_gen_params(&r, NULL, NULL, &p);
    CHECK(!p.json_object && !p.n_json_tool_names);
    anthropic_request_free(&r);
    CHECK_INT_EQ(parse("{\"model\":\"m\",\"max_tokens\":8,\"tools\":[{\"name\":\"a\","
                       "\"input_schema\":{}}],\"tool_choice\":{\"type\":\"none\"},\"messages\":[{"
                       "\"role\":\"user\",\"content\":\"x\"}]}",
                       false, &r, &e),
                 0);
    CHECK(!r.tools_shown && !cJSON_GetObjectItem(r.chat, "tools"));
    anthropic_request_free(&r);
}

static void test_server_tools_left_out(void)
{
    struct anthropic_request r;
    struct anthropic_error e;
    CHECK_INT_EQ(
        parse("{\"model\":\"m\",\"max_tokens\":8,\"tools\":[{\"type\":\"web_search_20250305\","
              "\"name\":\"web_search\",\"max_uses\":5},{\"type\":\"custom\",\"name\":\"f\","
              "\"input_schema\":{}}],\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{"
              "\"role\":\"assistant\",\"content\":[{\"type\":\"server_tool_use\",\"id\":\"s\","
              "\"name\":\"web_search\",\"input\":{}},{\"type\":\"web_search_tool_result\","
              "\"tool_use_id\":\"s\",\"content\":[]},{\"type\":\"text\",\"text\":\"found\"}]},{"
              "\"role\":\"user\",\"content\":\"more\"}]}",
              false, &r, &e),
        0);
    char *t = chat_text(&r);
    CHECK_STR_EQ(t, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":"
                    "\"assistant\",\"content\":\"found\"},{\"role\":\"user\",\"content\":"
                    "\"more\"}],\"tools\":[{\"function\":{\"name\":\"f\",\"parameters\":{}},"
                    "\"type\":\"function\"}],\"add_generation_prompt\":true,\"enable_thinking\":"
                    "false}");
    free(t);
    anthropic_request_free(&r);
}

static void test_prefill_thinking_count(void)
{
    struct anthropic_request r;
    struct anthropic_error e;
    CHECK_INT_EQ(parse("{\"model\":\"m\",\"max_tokens\":2048,\"thinking\":{\"type\":\"enabled\","
                       "\"budget_tokens\":1024},\"messages\":[{\"role\":\"user\",\"content\":"
                       "\"q\"},{\"role\":\"assistant\",\"content\":\"The answer is\"}]}",
                       false, &r, &e),
                 0);
    CHECK(r.thinking && r.thinking_budget == 1024);
    CHECK_STR_EQ(r.prefill, "The answer is");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(r.chat, "add_generation_prompt")));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(r.chat, "enable_thinking")));
    anthropic_request_free(&r);
    /* An empty final assistant message is no prefill. */
    CHECK_INT_EQ(parse("{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"q\"},{\"role\":\"assistant\",\"content\":[]}]}",
                       false, &r, &e),
                 0);
    CHECK(!r.prefill && cJSON_GetArraySize(cJSON_GetObjectItem(r.chat, "messages")) == 1);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(r.chat, "add_generation_prompt")));
    anthropic_request_free(&r);
    /* count_tokens needs no max_tokens. */
    CHECK_INT_EQ(parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
                       true, &r, &e),
                 0);
    CHECK_INT_EQ(r.max_tokens, 0);
    anthropic_request_free(&r);
}

static void test_gen_params_precedence(void)
{
    struct anthropic_request r;
    struct anthropic_error e;
    struct engine_gen_params p;
    CHECK_INT_EQ(parse("{\"model\":\"m\",\"max_tokens\":9,\"temperature\":0,\"stop_sequences\":"
                       "[\"END\",\"\\n\\n\"],\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}",
                       false, &r, &e),
                 0);
    cJSON *profile = cJSON_Parse("{\"temperature\":0.7,\"top_p\":0.9,\"top_k\":null,"
                                 "\"repetition_penalty\":1.1,\"seed\":5}");
    struct engine_gen_defaults model = {
        .has_top_k = true, .top_k = 20, .has_top_p = true, .top_p = 0.5f};
    anthropic_request_gen_params(&r, profile, &model, &p);
    CHECK(p.sampling.temperature == 0.0f);                       /* request */
    CHECK(p.sampling.top_p > 0.89f && p.sampling.top_p < 0.91f); /* profile */
    CHECK_INT_EQ(p.sampling.top_k, 20);                          /* model */
    CHECK(p.sampling.repetition_penalty > 1.09f && p.sampling.repetition_penalty < 1.11f);
    CHECK(p.has_seed && p.sampling.seed == 5);
    CHECK_INT_EQ(p.max_tokens, 9);
    CHECK_INT_EQ(p.n_stop, 2);
    CHECK_STR_EQ(p.stop[0], "END");
    CHECK_STR_EQ(p.stop[1], "\n\n");
    anthropic_request_gen_params(&r, NULL, NULL, &p);
    CHECK(p.sampling.top_p == 1.0f && p.sampling.top_k == 0 && !p.has_seed);
    anthropic_request_free(&r);
    /* Nothing set anywhere: Anthropic's default temperature of 1. */
    CHECK_INT_EQ(parse("{\"model\":\"m\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"q\"}]}",
                       false, &r, &e),
                 0);
    anthropic_request_gen_params(&r, NULL, NULL, &p);
    CHECK(p.sampling.temperature == 1.0f);
    anthropic_request_free(&r);
    cJSON_Delete(profile);
}

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_bad_bodies(void)
{
    static const struct {
        const char *body;
        const char *needle; /* part of the message */
    } cases[] = {
        {"[]", "JSON object"},
        {"{\"max_tokens\":5," MSG "}", "model"},
        {"{\"model\":\"\",\"max_tokens\":5," MSG "}", "model"},
        {"{\"model\":7,\"max_tokens\":5," MSG "}", "model"},
        {"{\"model\":\"m\"," MSG "}", "max_tokens: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":0," MSG "}", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":1.5," MSG "}", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":\"5\"," MSG "}", "max_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":5}", "messages: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":{}}", "messages: must be an array"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}", "at least one"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[\"hi\"]}", "messages.0"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"content\":\"x\"}]}",
         "messages.0.role"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}",
         "'bot'"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\"}]}",
         "messages.0.content: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":3}]}",
         "messages.0.content"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[7]}]}",
         "messages.0.content.0"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{}]}]}",
         "messages.0.content.0.type"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"video\"}]}]}",
         "unknown content block type 'video'"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"text\"}]}]}",
         "messages.0.content.0.text"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
         "\"data\":\"AA==\"}}]}]}",
         "image content is not supported"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"tool_use\",\"id\":\"a\",\"name\":\"f\",\"input\":{}}]}]}",
         "belong in assistant messages"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
         "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"a\"}]},"
         "{\"role\":\"user\",\"content\":\"x\"}]}",
         "belong in user messages"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"tool_result\"}]}]}",
         "tool_use_id"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"tool_result\",\"tool_use_id\":\"a\",\"content\":[{\"type\":\"image\"}]}]}]}",
         "image content is not supported"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{"
         "\"type\":\"tool_result\",\"tool_use_id\":\"a\",\"content\":5}]}]}",
         "content.0.content"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
         "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"a\",\"name\":\"f\","
         "\"input\":[]}]},{\"role\":\"user\",\"content\":\"x\"}]}",
         "input"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
         "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"a\",\"name\":\"f\","
         "\"input\":{}}]}]}",
         "prefill"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"system\":5," MSG "}", "system"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"system\":[{\"type\":\"image\"}]," MSG "}",
         "image content is not supported"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"system\":[{\"type\":\"tool_use\"}]," MSG "}",
         "expected 'text'"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"temperature\":1.5," MSG "}", "temperature"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"temperature\":\"hot\"," MSG "}", "temperature"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"top_p\":0," MSG "}", "top_p"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"top_k\":-1," MSG "}", "top_k"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"top_k\":2.5," MSG "}", "top_k"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"stop_sequences\":\"x\"," MSG "}", "stop_sequences"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"stop_sequences\":[\"\"]," MSG "}",
         "stop_sequences.0"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"stop_sequences\":[\"a\",3]," MSG "}",
         "stop_sequences.1"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"stream\":\"yes\"," MSG "}", "stream"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"metadata\":[]," MSG "}", "metadata"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"tools\":{}," MSG "}", "tools: must be an array"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"input_schema\":{}}]," MSG "}",
         "tools.0.name"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"name\":\"f\"}]," MSG "}",
         "tools.0.input_schema"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"name\":\"f\",\"input_schema\":{}},{"
         "\"name\":\"f\",\"input_schema\":{}}]," MSG "}",
         "unique"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"type\":5,\"name\":\"f\","
         "\"input_schema\":{}}]," MSG "}",
         "tools.0.type"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"tool_choice\":{\"type\":\"any\"}," MSG "}",
         "requires tools"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"tool_choice\":\"auto\"," MSG "}", "tool_choice"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"name\":\"f\",\"input_schema\":{}}],"
         "\"tool_choice\":{\"type\":\"sometimes\"}," MSG "}",
         "tool_choice.type"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"name\":\"f\",\"input_schema\":{}}],"
         "\"tool_choice\":{\"type\":\"tool\"}," MSG "}",
         "tool_choice.name"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"name\":\"f\",\"input_schema\":{}}],"
         "\"tool_choice\":{\"type\":\"tool\",\"name\":\"g\"}," MSG "}",
         "no tool named 'g'"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"thinking\":true," MSG "}", "thinking"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"thinking\":{\"type\":\"maybe\"}," MSG "}",
         "thinking.type"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"thinking\":{\"type\":\"enabled\"}," MSG "}",
         "budget_tokens"},
        {"{\"model\":\"m\",\"max_tokens\":5,\"thinking\":{\"type\":\"enabled\","
         "\"budget_tokens\":5}," MSG "}",
         "less than max_tokens"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct anthropic_request r;
        struct anthropic_error e;
        int rc = parse(cases[i].body, false, &r, &e);
        CHECK_MSG(rc == -1, "case %zu accepted: %s", i, cases[i].body);
        if (rc != -1)
            continue;
        CHECK_MSG(e.status == 400 && !strcmp(e.type, "invalid_request_error"), "case %zu", i);
        CHECK_MSG(strstr(e.message, cases[i].needle) != NULL, "case %zu: '%s' lacks '%s'", i,
                  e.message, cases[i].needle);
        CHECK(r.chat == NULL);
    }
    CHECK(sizeof(cases) / sizeof(cases[0]) >= 25);
}

/* ---- output ----------------------------------------------------------- */

struct recorder {
    char log[8192];   /* "event:type;" per event */
    char text[2048];  /* concatenated text_delta */
    char think[2048]; /* concatenated thinking_delta */
    char json[2048];  /* concatenated partial_json */
    int last_index, ok_order;
};

static void rec_cat(char *dst, size_t cap, const char *s)
{
    strncat(dst, s, cap - strlen(dst) - 1);
}

static void on_event(void *user, const char *event, const cJSON *data)
{
    struct recorder *r = user;
    int index = (int)cJSON_GetObjectItem(data, "index")->valuedouble;
    rec_cat(r->log, sizeof(r->log), event);
    if (!strcmp(event, "content_block_start")) {
        if (index != r->last_index + 1)
            r->ok_order = 0;
        r->last_index = index;
        rec_cat(r->log, sizeof(r->log), ":");
        rec_cat(
            r->log, sizeof(r->log),
            cJSON_GetObjectItem(cJSON_GetObjectItem(data, "content_block"), "type")->valuestring);
    } else if (index != r->last_index) {
        r->ok_order = 0;
    }
    if (!strcmp(event, "content_block_delta")) {
        const cJSON *d = cJSON_GetObjectItem(data, "delta");
        const char *type = cJSON_GetObjectItem(d, "type")->valuestring;
        if (!strcmp(type, "text_delta"))
            rec_cat(r->text, sizeof(r->text), cJSON_GetObjectItem(d, "text")->valuestring);
        else if (!strcmp(type, "thinking_delta"))
            rec_cat(r->think, sizeof(r->think), cJSON_GetObjectItem(d, "thinking")->valuestring);
        else
            rec_cat(r->json, sizeof(r->json), cJSON_GetObjectItem(d, "partial_json")->valuestring);
    }
    rec_cat(r->log, sizeof(r->log), ";");
}

/* Feeds `text` in pieces of `step` bytes. */
static struct anthropic_output *run_output(const char *text, size_t step, bool tools,
                                           struct recorder *rec)
{
    struct anthropic_output_opts opts = {.parse_tools = tools,
                                         .tool_format = TOOLCALL_FORMAT_AUTO,
                                         .emit = rec ? on_event : NULL,
                                         .user = rec};
    if (rec) {
        memset(rec, 0, sizeof(*rec));
        rec->last_index = -1;
        rec->ok_order = 1;
    }
    struct anthropic_output *o = anthropic_output_new(&opts);
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i += step)
        CHECK(anthropic_output_feed(o, text + i, i + step > n ? n - i : step) == 0);
    CHECK(anthropic_output_finish(o) == 0);
    return o;
}

static void test_output_thinking_text_tool(void)
{
    const char *gen = "<think>\nplan it\n</think>\n\nCalling now.\n<tool_call>\n{\"name\": "
                      "\"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
    struct anthropic_output *whole = run_output(gen, strlen(gen), true, NULL);
    char *expect = cJSON_PrintUnformatted(anthropic_output_content(whole));
    const cJSON *c = anthropic_output_content(whole);
    CHECK_INT_EQ(cJSON_GetArraySize(c), 3);
    CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(c, 0), "thinking")->valuestring, "plan it");
    const char *text = cJSON_GetObjectItem(cJSON_GetArrayItem(c, 1), "text")->valuestring;
    CHECK(!strncmp(text, "Calling now.", 12) && strspn(text + 12, "\n") == strlen(text + 12));
    const cJSON *tu = cJSON_GetArrayItem(c, 2);
    CHECK_STR_EQ(cJSON_GetObjectItem(tu, "type")->valuestring, "tool_use");
    CHECK_STR_EQ(cJSON_GetObjectItem(tu, "name")->valuestring, "get_weather");
    CHECK(!strncmp(cJSON_GetObjectItem(tu, "id")->valuestring, "toolu_", 6));
    CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(tu, "input"), "city")->valuestring,
                 "Paris");
    CHECK_INT_EQ(anthropic_output_tool_uses(whole), 1);

    /* Any fragmentation: the same blocks (ids aside) and the same events. */
    for (size_t step = 1; step <= 7; step++) {
        struct recorder rec;
        struct anthropic_output *o = run_output(gen, step, true, &rec);
        CHECK_MSG(!strcmp(rec.log, "content_block_start:thinking;content_block_delta;"
                                   "content_block_delta;content_block_stop;") ||
                      strncmp(rec.log, "content_block_start:thinking;", 29) == 0,
                  "%s", rec.log);
        CHECK(strstr(rec.log, "content_block_start:text;") &&
              strstr(rec.log, "content_block_start:tool_use;"));
        CHECK(rec.ok_order);
        CHECK_STR_EQ(rec.think, "plan it");
        CHECK_STR_EQ(rec.text, text);
        cJSON *args = cJSON_Parse(rec.json);
        CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(args, "city")), "Paris");
        cJSON_Delete(args);
        const cJSON *oc = anthropic_output_content(o);
        CHECK_INT_EQ(cJSON_GetArraySize(oc), 3);
        /* Ids are random; compare everything else. */
        cJSON *copy = cJSON_Duplicate(oc, 1);
        cJSON_ReplaceItemInObject(cJSON_GetArrayItem(copy, 2), "id",
                                  cJSON_CreateString(cJSON_GetObjectItem(tu, "id")->valuestring));
        char *got = cJSON_PrintUnformatted(copy);
        CHECK_STR_EQ(got, expect);
        free(got);
        cJSON_Delete(copy);
        anthropic_output_free(o);
    }
    free(expect);
    anthropic_output_free(whole);
}

static void test_output_plain(void)
{
    struct recorder rec;
    /* Without tools shown, a tool-call lookalike stays text. */
    const char *gen = "Hi <tool_call>{\"name\":\"x\"}</tool_call>";
    struct anthropic_output *o = run_output(gen, 3, false, &rec);
    CHECK_STR_EQ(rec.log, "content_block_start:text;content_block_delta;content_block_delta;"
                          "content_block_delta;content_block_delta;content_block_delta;"
                          "content_block_delta;content_block_delta;content_block_delta;"
                          "content_block_delta;content_block_delta;content_block_delta;"
                          "content_block_delta;content_block_delta;content_block_stop;");
    CHECK_STR_EQ(rec.text, gen);
    CHECK_INT_EQ(anthropic_output_tool_uses(o), 0);
    anthropic_output_free(o);
    /* Nothing generated: no blocks, no events. */
    o = run_output("", 1, true, &rec);
    CHECK_STR_EQ(rec.log, "");
    CHECK_INT_EQ(cJSON_GetArraySize(anthropic_output_content(o)), 0);
    anthropic_output_free(o);
    /* A NUL byte shows as U+FFFD instead of cutting the block short. */
    struct anthropic_output_opts plain = {.tool_format = TOOLCALL_FORMAT_AUTO};
    o = anthropic_output_new(&plain);
    CHECK(anthropic_output_feed(o, "a\0b", 3) == 0 && anthropic_output_finish(o) == 0);
    CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(anthropic_output_content(o), 0), "text")
                     ->valuestring,
                 "a\xef\xbf\xbd"
                 "b");
    anthropic_output_free(o);
    /* A call with arguments that are not an object gets input {}. */
    o = run_output("<tool_call>{\"name\":\"f\",\"arguments\":[1]}</tool_call>", 4, true, NULL);
    const cJSON *tu = cJSON_GetArrayItem(anthropic_output_content(o), 0);
    CHECK(cJSON_IsObject(cJSON_GetObjectItem(tu, "input")) &&
          !cJSON_GetObjectItem(tu, "input")->child);
    anthropic_output_free(o);
}

static void test_error_types(void)
{
    CHECK_STR_EQ(http_anthropic_error_type(400), "invalid_request_error");
    CHECK_STR_EQ(http_anthropic_error_type(422), "invalid_request_error");
    CHECK_STR_EQ(http_anthropic_error_type(401), "authentication_error");
    CHECK_STR_EQ(http_anthropic_error_type(403), "permission_error");
    CHECK_STR_EQ(http_anthropic_error_type(404), "not_found_error");
    CHECK_STR_EQ(http_anthropic_error_type(413), "request_too_large");
    CHECK_STR_EQ(http_anthropic_error_type(429), "rate_limit_error");
    CHECK_STR_EQ(http_anthropic_error_type(503), "overloaded_error");
    CHECK_STR_EQ(http_anthropic_error_type(529), "overloaded_error");
    CHECK_STR_EQ(http_anthropic_error_type(500), "api_error");
    CHECK_STR_EQ(http_anthropic_error_type(507), "api_error");
}

int main(void)
{
    RUN(test_minimal);
    RUN(test_system_and_blocks);
    RUN(test_tools_and_tool_turns);
    RUN(test_server_tools_left_out);
    RUN(test_prefill_thinking_count);
    RUN(test_gen_params_precedence);
    RUN(test_bad_bodies);
    RUN(test_output_thinking_text_tool);
    RUN(test_output_plain);
    RUN(test_error_types);
    for (int i = 0; i < n_bodies; i++)
        cJSON_Delete(bodies[i]);
    return harness_finish();
}
