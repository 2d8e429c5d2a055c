/* opt.h -- one option table per subcommand: parsing, environment twins, generated --help.
 *
 * A subcommand describes its options as an array of opt_t rows ending with OPT_END, wraps
 * it in an opt_cmd_t with its synopsis and description, and calls opt_parse() once. The
 * table is the only place an option is named: the parser, the environment lookup and the
 * --help text all read it, so they cannot disagree (git's parse-options, redis-cli's
 * single option list).
 *
 * Rules:
 *  - Value options take "--name VALUE" or "--name=VALUE"; flags take "--name" only, and
 *    "--flag=VALUE" is a usage error naming the flag. A row may have a one-letter alias
 *    ("-o FILE", "-f"). "--" ends the options: everything after it is positional. A lone
 *    "-" is positional (standard input).
 *  - A row's environment twin applies when its option is not on the command line: flags win
 *    over the environment, the environment over defaults (docs/HTTP.md, "Options and
 *    limits"). The default is whatever the destination held before opt_parse(). An empty
 *    variable counts as unset. Environment values are checked exactly like flag values.
 *  - "-h"/"--help" prints the usage generated from the table on stdout (exit 0); a usage
 *    error is printed on stderr as "reel <command>: ..." naming the bad option or value
 *    (exit 2). These are the git conventions cmds.h promises for every subcommand.
 *  - Values stored by OPT_STRING rows are borrowed from argv or the environment: they stay
 *    valid for the whole process.
 */
#ifndef REEL_OPT_H
#define REEL_OPT_H

#include <stdio.h>

typedef enum opt_type {
    OPT_STRING, /* dest: const char ** */
    OPT_U64,    /* dest: unsigned long long *; checked against min..max when max > 0 */
    OPT_FLAG,   /* dest: int *, set to 1; the row has no 'arg' */
    OPT_CHOICE, /* dest: int *, set to the index of the value in 'arg' ("full|none") */
    OPT_CALL,   /* fn(cmd, row, value) checks and stores the value itself */
} opt_type_t;

typedef struct opt opt_t;
typedef struct opt_cmd opt_cmd_t;

/* Stores 'value' for 'row' (usually into row->dest); returns 0, or -1 after printing a
 * usage error with cmd_error(cmd->name, ...) that names the option and the value. */
typedef int (*opt_fn)(const opt_cmd_t *cmd, const opt_t *row, const char *value);

struct opt {
    const char *name;   /* long name without "--"; NULL ends the table (OPT_END) */
    char alias;         /* one-letter alias ('o' for -o), or 0 */
    opt_type_t type;
    const char *arg;    /* the value's name in --help ("DIR"); the choices for OPT_CHOICE */
    const char *env;    /* environment twin ("REEL_DATA"), or NULL */
    const char *help;   /* one line; a '\n' continues it on the next, indented */
    const char *def;    /* the default as --help shows it, or NULL */
    void *dest;         /* see opt_type_t */
    opt_fn fn;          /* OPT_CALL only */
    unsigned long long min, max; /* OPT_U64 range, inclusive; none when max == 0 */
    int required;       /* shown without brackets in the synopsis; the command checks it,
                         * with a message saying what the option is for */
};

#define OPT_END {0}

struct opt_cmd {
    const char *name;     /* the subcommand, as in "reel <name>" */
    const char *synopsis; /* what follows "usage: reel <name> "; NULL: generated from rows */
    const char *args;     /* positional arguments for the generated synopsis ("[FILE|-]");
                           * NULL: the command takes none, and one is a usage error */
    const char *about;    /* paragraphs between the synopsis and the options */
    const char *footer;   /* text after the options, or NULL */
    const opt_t *opts;
};

/* opt_parse() return value meaning "no exit: run the command". */
#define OPT_GO (-1)

/* Parses argv[1..argc) (argv[0] is the subcommand name) against cmd->opts, then applies the
 * environment twins of the options that were absent. Positional arguments are moved, in
 * order, to argv[0..*nargs) ('nargs' may be NULL when cmd->args is NULL).
 * Returns OPT_GO to go on, or the exit status to return: CMD_OK after printing --help,
 * CMD_USAGE after printing a usage error. */
int opt_parse(const opt_cmd_t *cmd, int argc, char **argv, int *nargs);

/* Prints the usage of 'cmd' generated from its table (what --help shows) to 'f'. */
void opt_usage(const opt_cmd_t *cmd, FILE *f);

#endif
