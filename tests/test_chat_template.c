/*
 * test_chat_template.c - the Jinja-subset interpreter behind chat templates:
 * the golden renderings of real model templates, each language construct,
 * errors with positions, limits, and the `render` subcommand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chat_template.h"
#include "harness.h"

/* ---- helpers ------------------------------------------------------------- */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    if (s) {
        s[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return s;
}

/* Renders `tmpl` with the JSON object `ctx` (NULL: empty); returns the
 * malloc'd output or NULL with the error in err. */
static char *render(const char *tmpl, const char *ctx, char *err, size_t errlen)
{
    struct chat_template *t;
    err[0] = 0;
    if (chat_template_parse(tmpl, strlen(tmpl), &t, err, errlen) != ST_OK)
        return NULL;
    cJSON *c = ctx ? cJSON_Parse(ctx) : cJSON_CreateObject();
    if (!c) {
        snprintf(err, errlen, "bad test context JSON");
        chat_template_free(t);
        return NULL;
    }
    char *out = NULL;
    chat_template_render(t, c, &out, NULL, err, errlen);
    cJSON_Delete(c);
    chat_template_free(t);
    return out;
}

/* Checks that tmpl renders to want. */
#define CHECK_RENDER(tmpl, ctx, want)                                                              \
    do {                                                                                           \
        char e_[512];                                                                              \
        char *o_ = render(tmpl, ctx, e_, sizeof(e_));                                              \
        CHECK_MSG(o_ && !strcmp(o_, want), "template %s\n    got  [%s]%s\n    want [%s]", tmpl,    \
                  o_ ? o_ : "(null)", o_ ? "" : e_, want);                                         \
        free(o_);                                                                                  \
    } while (0)

/* Checks that tmpl fails (to parse or render) with a message containing want. */
#define CHECK_FAILS(tmpl, ctx, want)                                                               \
    do {                                                                                           \
        char e_[512];                                                                              \
        char *o_ = render(tmpl, ctx, e_, sizeof(e_));                                              \
        CHECK_MSG(!o_ && strstr(e_, want), "template %s: got [%s] err [%s], want err ~ %s", tmpl,  \
                  o_ ? o_ : "(null)", e_, want);                                                   \
        free(o_);                                                                                  \
    } while (0)

/* ---- goldens ------------------------------------------------------------- */

static void run_goldens(const char *name, int want_lines)
{
    char path[1024], err[512];
    const char *shared = harness_shared_dir();
    snprintf(path, sizeof(path), "%s/fixtures/tokenizers/%s", shared, name);
    struct chat_template *t;
    enum status st = chat_template_load(path, &t, err, sizeof(err));
    CHECK_MSG(st == ST_OK, "load %s: %s", name, err);
    if (st)
        return;
    snprintf(path, sizeof(path), "%s/fixtures/goldens/chat_template/%s.jsonl", shared, name);
    char *text = read_all(path, NULL);
    CHECK_MSG(text != NULL, "cannot read %s", path);
    int lines = 0, matched = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        if (!*line)
            continue;
        lines++;
        cJSON *g = cJSON_Parse(line);
        CHECK(g != NULL);
        if (!g)
            continue;
        cJSON *ctx = cJSON_CreateObject();
        cJSON_AddItemToObject(ctx, "messages",
                              cJSON_Duplicate(cJSON_GetObjectItem(g, "messages"), 1));
        cJSON_AddItemToObject(ctx, "add_generation_prompt",
                              cJSON_Duplicate(cJSON_GetObjectItem(g, "add_generation_prompt"), 1));
        cJSON *extra = cJSON_GetObjectItem(g, "extra");
        for (cJSON *e = extra ? extra->child : NULL; e; e = e->next)
            cJSON_AddItemToObject(ctx, e->string, cJSON_Duplicate(e, 1));
        char *out = NULL;
        st = chat_template_render(t, ctx, &out, NULL, err, sizeof(err));
        cJSON *want = cJSON_GetObjectItem(g, "rendered");
        const char *id = cJSON_GetObjectItem(g, "id")->valuestring;
        if (cJSON_IsString(want)) {
            int ok = st == ST_OK && !strcmp(out, want->valuestring);
            matched += ok;
            CHECK_MSG(ok, "%s/%s: %s\n--- got ---\n%s\n--- want ---\n%s", name, id,
                      st ? err : "mismatch", out ? out : "", want->valuestring);
        } else {
            const char *werr = cJSON_GetObjectItem(g, "error")->valuestring;
            int ok = st != ST_OK && strstr(err, werr) != NULL;
            matched += ok;
            CHECK_MSG(ok, "%s/%s: expected error '%s', got %s", name, id, werr,
                      st ? err : "success");
        }
        free(out);
        cJSON_Delete(ctx);
        cJSON_Delete(g);
    }
    CHECK_INT_EQ(lines, want_lines);
    CHECK_INT_EQ(matched, want_lines);
    free(text);
    chat_template_free(t);
}

static void test_golden_qwen3(void)
{
    run_goldens("qwen3", 27);
}

static void test_golden_llama3_1(void)
{
    run_goldens("llama3_1", 22);
}

static void test_golden_gemma3(void)
{
    run_goldens("gemma3", 23);
}

static void test_load_tokens(void)
{
    char path[1024], err[512];
    struct chat_template *t;
    snprintf(path, sizeof(path), "%s/fixtures/tokenizers/qwen3", harness_shared_dir());
    CHECK_INT_EQ(chat_template_load(path, &t, err, sizeof(err)), ST_OK);
    CHECK_STR_EQ(chat_template_bos_token(t), "");
    CHECK_STR_EQ(chat_template_eos_token(t), "<|im_end|>");
    chat_template_free(t);
    snprintf(path, sizeof(path), "%s/fixtures/tokenizers/gemma3", harness_shared_dir());
    CHECK_INT_EQ(chat_template_load(path, &t, err, sizeof(err)), ST_OK);
    CHECK_STR_EQ(chat_template_bos_token(t), "<bos>");
    CHECK_STR_EQ(chat_template_eos_token(t), "<end_of_turn>");
    /* a caller's bos_token wins over the model's */
    cJSON *ctx = cJSON_Parse("{\"bos_token\":\"[B]\",\"messages\":[{\"role\":\"user\","
                             "\"content\":\"hi\"}]}");
    char *out = NULL;
    CHECK_INT_EQ(chat_template_render(t, ctx, &out, NULL, err, sizeof(err)), ST_OK);
    CHECK(out && !strncmp(out, "[B]<start_of_turn>user\nhi", 25));
    free(out);
    cJSON_Delete(ctx);
    chat_template_free(t);
    /* mistral's tokenizer_config.json has no chat template */
    snprintf(path, sizeof(path), "%s/fixtures/tokenizers/mistral", harness_shared_dir());
    CHECK_INT_EQ(chat_template_load(path, &t, err, sizeof(err)), ST_ERR_NOT_FOUND);
    CHECK_INT_EQ(chat_template_load("/nonexistent/dir", &t, err, sizeof(err)), ST_ERR_NOT_FOUND);
}

/* The Llama 3 config in the llama3_1 folder: its own template and eos. */
static void test_llama3_config(void)
{
    char path[1024], err[512];
    snprintf(path, sizeof(path), "%s/fixtures/tokenizers/llama3_1/tokenizer_config.llama3.json",
             harness_shared_dir());
    char *text = read_all(path, NULL);
    CHECK(text != NULL);
    cJSON *cfg = cJSON_Parse(text);
    free(text);
    CHECK(cfg != NULL);
    const char *src = cJSON_GetObjectItem(cfg, "chat_template")->valuestring;
    struct chat_template *t;
    CHECK_INT_EQ(chat_template_parse(src, strlen(src), &t, err, sizeof(err)), ST_OK);
    cJSON *ctx =
        cJSON_Parse("{\"messages\":[{\"role\":\"system\",\"content\":\" Be brief. \"},"
                    "{\"role\":\"user\",\"content\":\"Hi\"}],"
                    "\"bos_token\":\"<|begin_of_text|>\",\"eos_token\":\"<|end_of_text|>\","
                    "\"add_generation_prompt\":true}");
    char *out = NULL;
    CHECK_INT_EQ(chat_template_render(t, ctx, &out, NULL, err, sizeof(err)), ST_OK);
    CHECK_STR_EQ(out, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief."
                      "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n");
    free(out);
    cJSON_Delete(ctx);
    cJSON_Delete(cfg);
    chat_template_free(t);
}

/* ---- language constructs ------------------------------------------------- */

static void test_text_and_output(void)
{
    CHECK_RENDER("", NULL, "");
    CHECK_RENDER("plain text", NULL, "plain text");
    CHECK_RENDER("a{{ 'b' }}c{{ 1 + 2 }}{{ x }}", "{\"x\":\"!\"}", "abc3!");
    CHECK_RENDER("{# comment #}x{# multi\nline #}", NULL, "x");
    CHECK_RENDER("{{ missing }}|{{ missing.attr }}|{{ missing['k'] }}", NULL, "||");
    CHECK_RENDER("{{ none }} {{ true }} {{ False }} {{ 1.5 }} {{ 2.0 }} {{ 1e20 }} {{ 0.00001 }}",
                 NULL, "None True False 1.5 2.0 1e+20 1e-05");
    CHECK_RENDER("{{ [1, 'a', none, true] }} {{ {'k': 'v', 'n': 1} }} {{ (1,) }} {{ (1, 2) }}",
                 NULL, "[1, 'a', None, True] {'k': 'v', 'n': 1} (1,) (1, 2)");
    CHECK_RENDER("{{ \"it's\" }} {{ ['it\\'s', \"a\\\"b\"] }}", NULL, "it's [\"it's\", 'a\"b']");
    CHECK_RENDER("{{ 'a\\nb\\t\\u00e9\\x41' }}", NULL,
                 "a\nb\t\xc3\xa9"
                 "A");
    CHECK_RENDER("{{ 'con' 'cat' }}", NULL, "concat");
    CHECK_RENDER("{% raw %}{{ not parsed }}{% endraw %}", NULL, "{{ not parsed }}");
    /* keep_trailing_newline=False drops exactly one trailing newline */
    CHECK_RENDER("a\n\n", NULL, "a\n");
}

static void test_whitespace_control(void)
{
    CHECK_RENDER("a  {{- 'b' -}}  c", NULL, "abc");
    CHECK_RENDER("a \n {%- if true -%} \n b \n {%- endif -%} \n c", NULL, "abc");
    /* trim_blocks: the newline after a block tag goes */
    CHECK_RENDER("{% if true %}\nyes\n{% endif %}\nend", NULL, "yes\nend");
    /* lstrip_blocks: indentation before a block tag goes, not before {{ */
    CHECK_RENDER("<\n    {% if true %}\n    x\n    {% endif %}\n>", NULL, "<\n    x\n>");
    CHECK_RENDER("  {{ 'v' }}", NULL, "  v");
    CHECK_RENDER("a  {% if true %}b{% endif %}", NULL, "a  b");
    /* {%+ disables lstrip, +%} disables trim */
    CHECK_RENDER("  {%+ if true %}x{% endif %}", NULL, "  x");
    CHECK_RENDER("{% if true +%}\nx{% endif %}", NULL, "\nx");
    CHECK_RENDER("  {# c #}\nx", NULL, "x");
    CHECK_RENDER("a\r\nb", NULL, "a\nb");
}

static void test_if_and_operators(void)
{
    CHECK_RENDER("{% if x %}A{% elif y %}B{% else %}C{% endif %}", "{\"y\":1}", "B");
    CHECK_RENDER("{% if x %}A{% elif y %}B{% else %}C{% endif %}", "{}", "C");
    CHECK_RENDER("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}",
                 NULL, "3 -4 1 2 3.5 1024");
    CHECK_RENDER("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 + 5 }} {{ 'ab' * 3 }}", NULL,
                 "7 9 3 ababab");
    CHECK_RENDER("{{ 'a' ~ 1 ~ none ~ x }}", NULL, "a1None");
    CHECK_RENDER("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 1 != 2 }}",
                 NULL, "True False True True True");
    CHECK_RENDER("{{ 'b' in 'abc' }} {{ 2 in [1,2] }} {{ 'k' in {'k':1} }} {{ 3 not in [1] }}",
                 NULL, "True True True True");
    CHECK_RENDER(
        "{{ x and 'y' }}|{{ 0 or 'z' }}|{{ not x }}|{{ 'a' if x else 'b' }}|{{ 'a' if x }}", NULL,
        "|z|True|b|");
    CHECK_RENDER("{{ not x is defined }} {{ x is not defined }} {{ 1 + 1 is number }}", NULL,
                 "True True 2");
}

static void test_for_loops(void)
{
    CHECK_RENDER("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}"
                 "{{ loop.last }}{{ loop.length }}{{ loop.revindex }};{% endfor %}",
                 NULL, "10TrueFalse33;21FalseFalse32;32FalseTrue31;");
    CHECK_RENDER("{% for x in 'abc' %}{{ loop.previtem }}{{ x }}{{ loop.nextitem }},{% endfor %}",
                 NULL, "ab,abc,bc,");
    CHECK_RENDER("{% for x in [] %}a{% else %}empty{% endfor %}", NULL, "empty");
    CHECK_RENDER("{% for x in range(10) if x is odd %}{{ x }}{{ '/' if loop.last }}{% endfor %}",
                 NULL, "13579/");
    CHECK_RENDER("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }} {% endfor %}", NULL,
                 "a=1 b=2 ");
    CHECK_RENDER("{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}", NULL, "ab");
    CHECK_RENDER("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}"
                 "{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}",
                 NULL, "02");
    CHECK_RENDER("{% for x in range(2) %}{% for y in 'ab' %}{{ x }}{{ y }}{{ loop.index }} "
                 "{% endfor %}{% endfor %}",
                 NULL, "0a1 0b2 1a1 1b2 ");
    CHECK_RENDER("{% for x in [1,2] %}{{ loop.cycle('odd', 'even') }}{% endfor %}", NULL,
                 "oddeven");
    CHECK_RENDER("{{ range(3) }} {{ range(1, 7, 2) }} {{ range(3, 0, -1) }}", NULL,
                 "[0, 1, 2] [1, 3, 5] [3, 2, 1]");
}

static void test_set_and_scoping(void)
{
    CHECK_RENDER("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}", NULL, "2");
    /* a set inside a loop does not leak out; a namespace does */
    CHECK_RENDER("{% set x = 1 %}{% for i in [1] %}{% set x = 5 %}{{ x }}{% endfor %}{{ x }}", NULL,
                 "51");
    CHECK_RENDER(
        "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}"
        "{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}",
        NULL, "6 0123");
    CHECK_RENDER("{% set a, b = 1, 2 %}{{ a }}{{ b }}", NULL, "12");
    CHECK_RENDER("{% set t %}in {{ 'block' }}{% endset %}[{{ t }}]", NULL, "[in block]");
    CHECK_RENDER("{% set l = [] %}{% for i in range(3) %}{% set _ = l.append(i * 2) %}{% endfor %}"
                 "{{ l }}",
                 NULL, "[0, 2, 4]");
    CHECK_RENDER("{% set d = dict(a=1, b='x') %}{{ d.a }}{{ d['b'] }}{{ d.get('c', 'none') }}",
                 NULL, "1xnone");
    CHECK_FAILS("{% set x = 1 %}{% set x.y = 2 %}", NULL, "non-namespace");
}

static void test_macros(void)
{
    CHECK_RENDER("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
                 "{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }}",
                 NULL, "Hi A! Hi B? Hi C.");
    CHECK_RENDER("{% macro wrap() %}[{{ caller() }}]{% endmacro %}"
                 "{% call wrap() %}inside {{ 1 + 1 }}{% endcall %}",
                 NULL, "[inside 2]");
    CHECK_RENDER("{% macro m(x) %}{{ x }}{{ varargs }}{{ kwargs }}{% endmacro %}"
                 "{{ m(1, 2, k=3) }}",
                 NULL, "1(2,){'k': 3}");
    CHECK_RENDER("{% filter upper %}shout {{ 'it' }}{% endfilter %}", NULL, "SHOUT IT");
    CHECK_FAILS("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}", NULL, "nested deeper");
}

static void test_subscripts_and_slices(void)
{
    const char *ctx = "{\"l\":[1,2,3,4,5],\"s\":\"h\xc3\xa9llo\",\"d\":{\"a\":{\"b\":7}}}";
    CHECK_RENDER("{{ l[0] }}{{ l[-1] }}{{ l[9] }}|{{ l[1:3] }}{{ l[:2] }}{{ l[3:] }}", ctx,
                 "15|[2, 3][1, 2][4, 5]");
    CHECK_RENDER("{{ l[::-1] }} {{ l[::2] }} {{ l[-2:] }} {{ l[4:1:-2] }}", ctx,
                 "[5, 4, 3, 2, 1] [1, 3, 5] [4, 5] [5, 3]");
    CHECK_RENDER("{{ s[1] }} {{ s[::-1] }} {{ s[:2] }} {{ s|length }}", ctx,
                 "\xc3\xa9 oll\xc3\xa9h h\xc3\xa9 5");
    CHECK_RENDER("{{ d.a.b }} {{ d['a']['b'] }} {{ d.a.zz }}|{{ d.x.y.z }}", ctx, "7 7 |");
    CHECK_FAILS("{{ l[::0] }}", ctx, "zero");
}

static void test_filters(void)
{
    CHECK_RENDER("{{ '  x  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ [1,2]|length }}|{{ 'abc'|count }}",
                 NULL, "x|a|2|3");
    CHECK_RENDER("{{ x|default('d') }} {{ ''|default('e', true) }} {{ 0|d(5) }}", NULL, "d e 0");
    CHECK_RENDER("{{ [1,2,3]|join(', ') }} {{ [{'n':'a'},{'n':'b'}]|join('-', attribute='n') }}",
                 NULL, "1, 2, 3 a-b");
    CHECK_RENDER("{{ 'hello WORLD'|upper }} {{ 'ABC'|lower }} {{ 'hello big-world'|title }} "
                 "{{ 'hELLO'|capitalize }}",
                 NULL, "HELLO WORLD abc Hello Big-World Hello");
    CHECK_RENDER("{{ 'aXbXc'|replace('X', '-') }} {{ 'aaa'|replace('a', 'b', 2) }}", NULL,
                 "a-b-c bba");
    CHECK_RENDER("{{ 3|string ~ 4 }} {{ '42'|int + 1 }} {{ 'x'|int }} {{ 3.9|int }} "
                 "{{ '2.5'|float }} {{ 7|float }}",
                 NULL, "34 43 0 3 2.5 7.0");
    CHECK_RENDER("{{ 'abc'|list }} {{ [3,1,2]|first }} {{ [3,1,2]|last }} {{ [1,2]|reverse }} "
                 "{{ 'abc'|reverse }}",
                 NULL, "['a', 'b', 'c'] 3 2 [2, 1] cba");
    CHECK_RENDER("{{ [3,1,2]|sort }} {{ ['b','A','c']|sort }} {{ [3,1,2]|sort(reverse=true) }}",
                 NULL, "[1, 2, 3] ['A', 'b', 'c'] [3, 2, 1]");
    CHECK_RENDER("{{ [{'n':2},{'n':1}]|sort(attribute='n')|map(attribute='n')|list }}", NULL,
                 "[1, 2]");
    CHECK_RENDER("{{ ['a','b']|map('upper')|join }} {{ [1,2,3,4]|select('even')|list }} "
                 "{{ [1,2,3,4]|reject('even')|list }}",
                 NULL, "AB [2, 4] [1, 3]");
    const char *msgs = "{\"m\":[{\"role\":\"user\",\"c\":1},{\"role\":\"tool\",\"c\":2},"
                       "{\"role\":\"user\",\"c\":3}]}";
    CHECK_RENDER("{{ m|selectattr('role', 'equalto', 'user')|map(attribute='c')|list }} "
                 "{{ m|rejectattr('role', '==', 'user')|list|length }} "
                 "{{ m|selectattr('c')|list|length }}",
                 msgs, "[1, 3] 1 3");
    CHECK_RENDER("{{ [1,2,1,3]|unique|list }} {{ ['a','A']|unique|list }}", NULL,
                 "[1, 2, 3] ['a']");
    CHECK_RENDER("{{ '<a href=\"x\">&'|escape }} {{ 'x'|safe }}", NULL,
                 "&lt;a href=&#34;x&#34;&gt;&amp; x");
    CHECK_RENDER("{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}", NULL,
                 "a\n  b\n\n  c|  a\n  b");
    CHECK_RENDER("{{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 2.1|round(0, 'ceil') }}",
                 NULL, "3 2.57 2.0 3.0");
    CHECK_RENDER("{{ 'one two, three'|wordcount }}", NULL, "3");
    CHECK_RENDER("{{ {'b': 1, 'a': 2}|dictsort }} {{ {'b': 1, 'a': 2}|items|list }}", NULL,
                 "[('a', 2), ('b', 1)] [('b', 1), ('a', 2)]");
    CHECK_RENDER("{{ [1,2,3,4,5]|batch(2)|list }}", NULL, "[[1, 2], [3, 4], [5]]");
    CHECK_RENDER("{{ [3,1,2]|max }} {{ [3,1,2]|min }} {{ [1,2,3]|sum }}", NULL, "3 1 6");
}

static void test_tojson(void)
{
    const char *ctx =
        "{\"t\":{\"name\":\"f\",\"p\":{\"a\":[1,2.5,true,null],\"s\":\"\xc3\xa9\\\"\\n\"},"
        "\"e\":{},\"l\":[]}}";
    CHECK_RENDER(
        "{{ t|tojson }}", ctx,
        "{\"name\": \"f\", \"p\": {\"a\": [1, 2.5, true, null], \"s\": \"\xc3\xa9\\\"\\n\"}, "
        "\"e\": {}, \"l\": []}");
    CHECK_RENDER("{{ t.p.a|tojson(indent=2) }}", ctx, "[\n  1,\n  2.5,\n  true,\n  null\n]");
    CHECK_RENDER("{{ {'k': [1]}|tojson(indent=4) }}", NULL, "{\n    \"k\": [\n        1\n    ]\n}");
    /* transformers' tojson takes ensure_ascii first */
    CHECK_RENDER("{{ '\u00e9\U0001F600'|tojson(true) }}", NULL, "\"\\u00e9\\ud83d\\ude00\"");
    CHECK_RENDER("{{ 'a\\x01<'|tojson }}", NULL, "\"a\\u0001<\"");
    CHECK_FAILS("{{ x|tojson }}", NULL, "not JSON serializable");
}

static void test_tests(void)
{
    CHECK_RENDER("{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 'a' is string }}"
                 "{{ 1 is number }}{{ 1 is integer }}{{ 1.5 is float }}{{ {} is mapping }}",
                 NULL, "FalseTrueTrueTrueTrueTrueTrueTrue");
    CHECK_RENDER("{{ [] is iterable }}{{ 'a' is sequence }}{{ 1 is iterable }}{{ true is boolean }}"
                 "{{ false is false }}{{ true is true }}{{ 1 is true }}",
                 NULL, "TrueTrueFalseTrueTrueTrueFalse");
    CHECK_RENDER("{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 2 is equalto 2 }}"
                 "{{ 2 is eq(3) }}{{ 'a' is in 'cat' }}{{ 'ab' is lower }}{{ range is callable }}",
                 NULL, "TrueTrueTrueTrueFalseTrueTrueTrue");
}

static void test_string_methods(void)
{
    CHECK_RENDER("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}"
                 "{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a,b,c'.rsplit(',', 1) }}",
                 NULL, "TrueTrue['a', 'b', '', 'c']['a', 'b']['a,b', 'c']");
    CHECK_RENDER("[{{ '  x '.strip() }}][{{ '\\n\\nx\\n'.lstrip('\\n') }}][{{ 'x  '.rstrip() }}]"
                 "{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}{{ 'hi there'.title() }}",
                 NULL, "[x][x\n][x]HIhiHi There");
    CHECK_RENDER("{{ 'a-b'.replace('-', '+') }} {{ '{} and {}'.format(1, 'x') }} "
                 "{{ '{0}{name}'.format(5, name='n') }} {{ 'hello'.find('l') }} "
                 "{{ 'hello'.count('l') }} {{ '-'.join(['a', 'b']) }}",
                 NULL, "a+b 1 and x 5n 2 2 a-b");
    CHECK_RENDER("{{ {'a': 1}.keys()|list }}{{ {'a': 1}.values()|list }}{{ {'a': 1}.get('a') }}"
                 "{{ {'a': 1}.get('b') }}",
                 NULL, "['a'][1]1None");
}

static void test_strftime_now(void)
{
    char err[512];
    char *out =
        render("{{ strftime_now('%Y') }}|{{ strftime_now is defined }}", NULL, err, sizeof(err));
    CHECK_MSG(out && strlen(out) == 9 && out[0] == '2' && !strcmp(out + 4, "|True"), "%s",
              out ? out : err);
    free(out);
}

/* ---- errors and limits --------------------------------------------------- */

static void test_errors_have_positions(void)
{
    CHECK_FAILS("{% if x %}\nabc", NULL, "expected 'endif'");
    CHECK_FAILS("line1\n  {{ 1 + }}", NULL, "line 2:");
    CHECK_FAILS("{{ x|nosuchfilter }}", NULL, "line 1:6: no filter named 'nosuchfilter'");
    CHECK_FAILS("{{ x is nosuchtest }}", NULL, "no test named");
    CHECK_FAILS("{% frobnicate %}", NULL, "unknown or unexpected tag 'frobnicate'");
    CHECK_FAILS("{{ 'abc }}", NULL, "unterminated string");
    CHECK_FAILS("{{ 1 ", NULL, "unclosed tag");
    CHECK_FAILS("{% endif %}", NULL, "unexpected tag 'endif'");
    CHECK_FAILS("{% break %}", NULL, "outside of a for loop");
    CHECK_FAILS("ab\n{{ raise_exception('custom failure') }}", NULL, "line 2:4: custom failure");
    CHECK_FAILS("{{ 1 / 0 }}", NULL, "division by zero");
    CHECK_FAILS("{{ 'a' + 1 }}", NULL, "unsupported operand types for +: 'string' and 'integer'");
    CHECK_FAILS("{{ x + 1 }}", NULL, "undefined value");
    CHECK_FAILS("{{ nothing() }}", NULL, "'nothing' is undefined");
    CHECK_FAILS("{% for x in 5 %}{% endfor %}", NULL, "not iterable");
    CHECK_FAILS("{{ 'a' < 1 }}", NULL, "unsupported operand types for <");
    CHECK_FAILS("{{ 9223372036854775807 + 1 }}", NULL, "overflow");
    CHECK_FAILS("{{ 'x'.nomethod() }}", NULL, "has no method 'nomethod'");
    CHECK_FAILS("{{ ) }}", NULL, "line 1:4: unbalanced");
    CHECK_FAILS("{{ , }}", NULL, "line 1:4: unexpected operator");
    CHECK_FAILS("{% for a, b in [1] %}{% endfor %}", NULL, "cannot unpack");
}

static void test_limits(void)
{
    /* runaway loops, output and nesting end in an error, not a hang or crash */
    CHECK_FAILS("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
                NULL, "steps");
    CHECK_FAILS("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}"
                "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                NULL, "");
    CHECK_FAILS("{{ 'x' * 100000000 }}", NULL, "too large");
    CHECK_FAILS("{{ range(100000000) }}", NULL, "range");
    char *deep = malloc(20000);
    strcpy(deep, "{{ ");
    for (int i = 0; i < 3000; i++)
        strcat(deep, "(");
    strcat(deep, "1");
    for (int i = 0; i < 3000; i++)
        strcat(deep, ")");
    strcat(deep, " }}");
    CHECK_FAILS(deep, NULL, "nested deeper");
    /* a long flat chain is fine to parse but too deep to evaluate recursively */
    strcpy(deep, "{{ 1");
    for (int i = 0; i < 2000; i++)
        strcat(deep, "+1");
    strcat(deep, " }}");
    CHECK_FAILS(deep, NULL, "nested too deeply");
    free(deep);
    char err[256];
    struct chat_template *t;
    CHECK_INT_EQ(chat_template_parse("x", 5u << 20, &t, err, sizeof(err)), ST_ERR_RANGE);
    /* a context that is not an object is refused */
    CHECK_INT_EQ(chat_template_parse("x", 1, &t, err, sizeof(err)), ST_OK);
    cJSON *arr = cJSON_CreateArray();
    char *out = NULL;
    CHECK_INT_EQ(chat_template_render(t, arr, &out, NULL, err, sizeof(err)), ST_ERR_INVALID);
    CHECK(out == NULL);
    cJSON_Delete(arr);
    chat_template_free(t);
}

/* ---- the render subcommand ----------------------------------------------- */

/* Runs `mlx-manager render ARGS < input` and returns its stdout. */
static char *run_render(const char *args, const char *input, int *status)
{
    char in_path[] = "/tmp/test_render_XXXXXX";
    int fd = mkstemp(in_path);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "w");
    fputs(input, f);
    fclose(f);
    const char *build = getenv("BUILD");
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s/mlx-manager render %s < %s 2>/dev/null",
             build && *build ? build : "build", args, in_path);
    FILE *p = popen(cmd, "r");
    char *out = NULL;
    if (p) {
        size_t cap = 1 << 16, n = 0;
        out = malloc(cap);
        n = fread(out, 1, cap - 1, p);
        out[n] = 0;
        *status = pclose(p);
    }
    unlink(in_path);
    return out;
}

static void test_render_subcommand(void)
{
    char args[1024];
    int status = -1;
    snprintf(args, sizeof(args), "--model %s/fixtures/tokenizers/qwen3", harness_shared_dir());
    char *out = run_render(args,
                           "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
                           "{\"role\":\"user\",\"content\":\"Hi\"}],\"add_generation_prompt\":true,"
                           "\"enable_thinking\":false}",
                           &status);
    CHECK_INT_EQ(status, 0);
    CHECK_STR_EQ(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                      "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    free(out);

    snprintf(args, sizeof(args), "--jsonl --model %s/fixtures/tokenizers/gemma3",
             harness_shared_dir());
    out = run_render(args,
                     "{\"messages\":[{\"role\":\"user\",\"content\":\" Hi \"}]}\n"
                     "{\"messages\":[{\"role\":\"assistant\",\"content\":\"x\"}]}\n"
                     "not json\n",
                     &status);
    CHECK_INT_EQ(status, 0);
    CHECK_MSG(out &&
                  !strncmp(out,
                           "{\"rendered\":\"<bos><start_of_turn>user\\nHi<end_of_turn>\\n\"}\n"
                           "{\"error\":\"line 19:12: Conversation roles must alternate",
                           strlen("{\"rendered\":\"<bos><start_of_turn>user\\nHi<end_of_turn>"
                                  "\\n\"}\n{\"error\":\"line 19:12: Conversation roles must "
                                  "alternate")) &&
                  strstr(out, "\n{\"error\":\"request is not a JSON object\"}\n"),
              "%s", out ? out : "(null)");
    free(out);

    /* a model without a chat template, and a bad request, fail with status 1 */
    snprintf(args, sizeof(args), "--model %s/fixtures/tokenizers/mistral", harness_shared_dir());
    out = run_render(args, "{\"messages\":[]}", &status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    free(out);
    snprintf(args, sizeof(args), "--model %s/fixtures/tokenizers/qwen3", harness_shared_dir());
    out = run_render(args, "[1,2]", &status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    free(out);
    out = run_render("--bogus", "{}", &status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    free(out);
}

int main(void)
{
    RUN(test_golden_qwen3);
    RUN(test_golden_llama3_1);
    RUN(test_golden_gemma3);
    RUN(test_load_tokens);
    RUN(test_llama3_config);
    RUN(test_text_and_output);
    RUN(test_whitespace_control);
    RUN(test_if_and_operators);
    RUN(test_for_loops);
    RUN(test_set_and_scoping);
    RUN(test_macros);
    RUN(test_subscripts_and_slices);
    RUN(test_filters);
    RUN(test_tojson);
    RUN(test_tests);
    RUN(test_string_methods);
    RUN(test_strftime_now);
    RUN(test_errors_have_positions);
    RUN(test_limits);
    RUN(test_render_subcommand);
    return harness_finish();
}
