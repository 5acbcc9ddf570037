/* test_config.c - YAML configuration: defaults, valid files, every kind of bad file. */
#include "config.h"
#include "harness.h"

static int load(struct config *c, const char *yaml, char *err, size_t errlen)
{
    config_defaults(c);
    return config_load_string(c, "test.yaml", yaml, strlen(yaml), err, errlen);
}

static void test_config_defaults(void)
{
    struct config c;
    CHECK(config_defaults(&c) == 0);
    CHECK_INT_EQ(c.workers, 32);
    CHECK_INT_EQ(c.memory_limit_percent, 90);
    CHECK_STR_EQ(c.log_level, "info");
    CHECK(c.log_format == CONFIG_LOG_FORMAT_JSON);
    CHECK(c.kv_cache_dtype == ENGINE_KV_AUTO);
    CHECK_STR_EQ(c.hf_endpoint, "https://huggingface.co");
    CHECK(strstr(c.models_dir, "huggingface/hub") != NULL);
    config_free(&c);
}

static void test_config_valid_file(void)
{
    struct config c;
    char err[512] = "";
    const char *yaml = "# comment\n"
                       "listen: 127.0.0.1:9000\n"
                       "workers: 4\n"
                       "memory_limit_percent: 75\n"
                       "max_body_bytes: 2m\n"
                       "log_level: debug\n"
                       "log_format: text\n"
                       "kv_cache_dtype: f32\n"
                       "hf_endpoint: \"http://127.0.0.1:5000\"\n";
    CHECK_MSG(load(&c, yaml, err, sizeof(err)) == 0, "%s", err);
    CHECK_STR_EQ(c.listen, "127.0.0.1:9000");
    CHECK_INT_EQ(c.workers, 4);
    CHECK_INT_EQ(c.memory_limit_percent, 75);
    CHECK_INT_EQ(c.max_body_bytes, 2 * 1024 * 1024);
    CHECK_STR_EQ(c.log_level, "debug");
    CHECK(c.log_format == CONFIG_LOG_FORMAT_TEXT);
    CHECK(c.kv_cache_dtype == ENGINE_KV_F32);
    CHECK_STR_EQ(c.hf_endpoint, "http://127.0.0.1:5000");
    config_free(&c);
}

static void test_config_empty_file_is_defaults(void)
{
    struct config c;
    char err[512] = "";
    CHECK_MSG(load(&c, "", err, sizeof(err)) == 0, "%s", err);
    CHECK_INT_EQ(c.workers, 32);
    config_free(&c);
    CHECK_MSG(load(&c, "# only a comment\n", err, sizeof(err)) == 0, "%s", err);
    config_free(&c);
}

/* Each bad file must fail with the file name, the right line and a hint. */
static void expect_error(const char *yaml, const char *line_prefix, const char *needle)
{
    struct config c;
    char err[512] = "";
    int rc = load(&c, yaml, err, sizeof(err));
    CHECK_MSG(rc == -1, "accepted: %s", yaml);
    CHECK_MSG(strncmp(err, line_prefix, strlen(line_prefix)) == 0, "'%s' lacks '%s'", err,
              line_prefix);
    CHECK_MSG(strstr(err, needle) != NULL, "'%s' lacks '%s'", err, needle);
    config_free(&c);
}

static void test_config_bad_files(void)
{
    expect_error("workers: 4\nbogus_key: 1\n", "test.yaml:2:", "unknown key 'bogus_key'");
    expect_error("workers: many\n", "test.yaml:1:", "workers");
    expect_error("workers: 0\n", "test.yaml:1:", "from 1 to 256");
    expect_error("workers: 4.5\n", "test.yaml:1:", "integer");
    expect_error("memory_limit_percent: 101\n", "test.yaml:1:", "memory_limit_percent");
    expect_error("max_body_bytes: 12q\n", "test.yaml:1:", "max_body_bytes");
    expect_error("log_level: loud\n", "test.yaml:1:", "debug, info, warn or error");
    expect_error("log_format: xml\n", "test.yaml:1:", "json or text");
    expect_error("kv_cache_dtype: bf16\n", "test.yaml:1:", "auto, f16 or f32");
    expect_error("\n\nworkers: [1, 2]\n", "test.yaml:3:", "lists are not allowed");
    expect_error("workers:\n  nested: 1\n", "test.yaml:2:", "nested");
    expect_error("log_file: \"unterminated\n", "test.yaml:", "YAML syntax error");
    expect_error("workers: 4\n\tlog_level: info\n", "test.yaml:", "YAML syntax error");
    expect_error("- just\n- a list\n", "test.yaml:1:", "expected a mapping");
    expect_error("a: &x 1\nworkers: *x\n", "test.yaml:1:", "unknown key");
    expect_error("workers: 4\n---\nworkers: 5\n", "test.yaml:", "one YAML document");
    expect_error("just a scalar\n", "test.yaml:1:", "expected a mapping");
}

static void test_config_file_errors(void)
{
    struct config c;
    config_defaults(&c);
    char err[512] = "";
    CHECK(config_load_file(&c, "/nonexistent/mlxm.yaml", err, sizeof(err)) == -1);
    CHECK(strstr(err, "/nonexistent/mlxm.yaml") != NULL);
    config_free(&c);
}

static void test_config_env_overrides(void)
{
    struct config c;
    config_defaults(&c);
    setenv("HF_HOME", "/tmp/hfhome", 1);
    setenv("HF_ENDPOINT", "http://127.0.0.1:1234", 1);
    setenv("HF_TOKEN", "hf_secret", 1);
    char err[256];
    CHECK(config_apply_env(&c, err, sizeof(err)) == 0);
    CHECK_STR_EQ(c.models_dir, "/tmp/hfhome/hub");
    CHECK_STR_EQ(c.hf_endpoint, "http://127.0.0.1:1234");
    CHECK_STR_EQ(c.hf_token, "hf_secret");
    unsetenv("HF_HOME");
    unsetenv("HF_ENDPOINT");
    unsetenv("HF_TOKEN");
    config_free(&c);
}

int main(void)
{
    RUN(test_config_defaults);
    RUN(test_config_valid_file);
    RUN(test_config_empty_file_is_defaults);
    RUN(test_config_bad_files);
    RUN(test_config_file_errors);
    RUN(test_config_env_overrides);
    return harness_finish();
}
