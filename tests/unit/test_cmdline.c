/* common/cmdline.c: the one command-line parser (getopt_long with hykex's conventions). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cmdline.h"

enum { OPT_LONG_ONLY = HX_OPT_FIRST };

static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                        {"json", no_argument, NULL, 'j'},
                                        {"long-only", required_argument, NULL, OPT_LONG_ONLY},
                                        HX_CMDLINE_STD_OPTIONS};
static const struct hx_cmdline cl = {"prog sub", "usage: prog sub [OPTIONS] ARG\nmore\n", "hc:j",
                                     options, 0};

/* What one parse saw: the options (code and value) in order, the operands, the exit code. */
struct seen {
    int codes[8];
    const char *values[8];
    size_t n;
    int exit_code; /* -1: the options ended normally */
    int first_operand;
    char err[512], out[512];
};

/* Parses argv (NULL-terminated) with c, capturing stdout and stderr. */
static void parse(const struct hx_cmdline *c, char **argv, struct seen *s)
{
    int argc = 0, ch, ex = 0, saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
    FILE *out = tmpfile(), *err = tmpfile();

    while (argv[argc] != NULL) {
        argc++;
    }
    memset(s, 0, sizeof(*s));
    s->exit_code = -1;
    assert_non_null(out);
    assert_non_null(err);
    fflush(stdout);
    fflush(stderr);
    dup2(fileno(out), STDOUT_FILENO);
    dup2(fileno(err), STDERR_FILENO);
    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(c, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            s->exit_code = ex;
            break;
        }
        if (s->n < 8) {
            s->codes[s->n] = ch;
            s->values[s->n++] = optarg;
        }
    }
    s->first_operand = optind;
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved_out);
    close(saved_err);
    rewind(out);
    rewind(err);
    s->out[fread(s->out, 1, sizeof(s->out) - 1, out)] = '\0';
    s->err[fread(s->err, 1, sizeof(s->err) - 1, err)] = '\0';
    fclose(out);
    fclose(err);
}

static void options_and_operands_in_any_order(void **state)
{
    char *argv[] = {"sub", "A", "--config=x.json", "-j", "B", "--long-only", "v", "-cy", NULL};
    struct seen s;

    (void)state;
    parse(&cl, argv, &s);
    assert_int_equal(s.exit_code, -1);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.codes[0], 'c');
    assert_string_equal(s.values[0], "x.json");
    assert_int_equal(s.codes[1], 'j');
    assert_int_equal(s.codes[2], OPT_LONG_ONLY);
    assert_string_equal(s.values[2], "v");
    assert_int_equal(s.codes[3], 'c');
    assert_string_equal(s.values[3], "y");
    /* The operands, permuted to the end in their order. */
    assert_int_equal(s.first_operand, 6);
    assert_string_equal(argv[6], "A");
    assert_string_equal(argv[7], "B");
    assert_string_equal(s.err, "");
}

static void help_and_version_exit_0_on_stdout(void **state)
{
    char *help[] = {"sub", "--json", "--help", "--bogus", NULL};
    char *h[] = {"sub", "-h", NULL};
    char *version[] = {"sub", "--version", NULL};
    struct seen s;

    (void)state;
    parse(&cl, help, &s);
    assert_int_equal(s.exit_code, 0);
    assert_string_equal(s.out, cl.usage);
    assert_string_equal(s.err, "");
    parse(&cl, h, &s);
    assert_int_equal(s.exit_code, 0);
    assert_string_equal(s.out, cl.usage);
    parse(&cl, version, &s);
    assert_int_equal(s.exit_code, 0);
    assert_string_equal(s.err, "");
}

static void version_line_is_name_and_project_version(void **state)
{
    char *version[] = {"sub", "--version", NULL};
    char want[128];
    struct seen s;

    (void)state;
    parse(&cl, version, &s);
    assert_int_equal(s.exit_code, 0);
    snprintf(want, sizeof(want), "prog sub %s\n", hx_version());
    assert_string_equal(s.out, want);
    /* MAJOR.MINOR.PATCH */
    unsigned a, b, c;
    char tail;
    assert_int_equal(sscanf(hx_version(), "%u.%u.%u%c", &a, &b, &c, &tail), 3);
}

/* Every unknown or incomplete option: exit 2, nothing on stdout, its name on stderr. */
static void bad_options_exit_2_naming_them(void **state)
{
    static const struct {
        const char *arg, *next, *named, *why;
    } cases[] = {
        {"--bogus", NULL, "'--bogus'", "unknown option"},
        {"--bogus=1", NULL, "'--bogus'", "unknown option"},
        {"-Z", NULL, "'-Z'", "unknown option"},
        {"-jZ", NULL, "'-Z'", "unknown option"},
        {"--json=1", NULL, "'--json'", "unknown option"}, /* takes no value */
        {"--config", NULL, "'--config'", "needs a value"},
        {"-c", NULL, "'-c'", "needs a value"},
        {"--long-only", NULL, "'--long-only'", "needs a value"},
    };
    struct seen s;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[] = {"sub", (char *)cases[i].arg, (char *)cases[i].next, NULL};
        parse(&cl, argv, &s);
        assert_int_equal(s.exit_code, 2);
        assert_string_equal(s.out, "");
        assert_true(strncmp(s.err, "prog sub: ", 10) == 0);
        if (strstr(s.err, cases[i].named) == NULL || strstr(s.err, cases[i].why) == NULL) {
            fail_msg("%s: stderr '%s' lacks %s / %s", cases[i].arg, s.err, cases[i].named,
                     cases[i].why);
        }
        /* The usage's first line follows as a reminder. */
        assert_non_null(strstr(s.err, "usage: prog sub [OPTIONS] ARG\n"));
        assert_null(strstr(s.err, "more"));
    }
}

/* A program with subcommands stops at the first operand; the subcommand parses the rest. */
static void subcommand_parses_after_its_program(void **state)
{
    static const struct option top_options[] = {HX_CMDLINE_STD_OPTIONS};
    static const struct hx_cmdline top = {"prog", "usage: prog CMD\n", "h", top_options, 1};
    char *argv[] = {"prog", "sub", "--json", "X", NULL};
    struct seen s;

    (void)state;
    parse(&top, argv, &s);
    assert_int_equal(s.exit_code, -1);
    assert_int_equal(s.n, 0);
    assert_int_equal(s.first_operand, 1); /* "sub": --json is not the program's */
    parse(&cl, argv + 1, &s);
    assert_int_equal(s.exit_code, -1);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.codes[0], 'j');
    assert_string_equal(argv[1 + s.first_operand], "X");
}

static void error_message_names_program(void **state)
{
    int saved = dup(STDERR_FILENO);
    FILE *err = tmpfile();
    char buf[256];

    (void)state;
    fflush(stderr);
    dup2(fileno(err), STDERR_FILENO);
    assert_int_equal(hx_cmdline_error(&cl, "give %d operands", 2), HX_EXIT_USAGE);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(err);
    buf[fread(buf, 1, sizeof(buf) - 1, err)] = '\0';
    fclose(err);
    assert_string_equal(buf,
                        "prog sub: give 2 operands\nusage: prog sub [OPTIONS] ARG\n"
                        "(see prog sub --help)\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(options_and_operands_in_any_order),
        cmocka_unit_test(help_and_version_exit_0_on_stdout),
        cmocka_unit_test(version_line_is_name_and_project_version),
        cmocka_unit_test(bad_options_exit_2_naming_them),
        cmocka_unit_test(subcommand_parses_after_its_program),
        cmocka_unit_test(error_message_names_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
