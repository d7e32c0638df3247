/* SPDX-License-Identifier: Apache-2.0 */
/* berth copy: an image or index between registries and OCI image layouts. */
#include "cli/cli.h"
#include "cli/client_opts.h"
#include "cli/progress.h"

#include <berth/errors.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char help[] =
    "usage: berth copy SRC DST [options]\n"
    "\n"
    "Copy an image between registries ([docker://]HOST[:PORT]/NAME[:TAG][@DIGEST]) and\n"
    "OCI image layouts (oci:PATH[:TAG]). An index is copied whole by default, as crane\n"
    "does; --all says so explicitly; --platform copies only the matching image and tags\n"
    "it at DST. Blobs already at DST are skipped, and a blob met twice is copied once;\n"
    "every digest is verified; the tag is written last.\n"
    "A DST without a tag takes the source's tag (for oci:PATH without one, the name of its\n"
    "only named image; a name that is a full reference, example.com/app:v2, gives a\n"
    "registry DST its tag, v2, or latest); when the source is named by digest alone, a\n"
    "registry DST gets latest and a layout DST an unnamed entry.\n"
    "With --referrers, a registry DST without the referrers API (Distribution 2.8) also\n"
    "gets the fallback tag <alg>-<hex> of the referrers tag schema, and such a source is\n"
    "read through it.\n"
    "\n"
    "Progress goes to standard error: on a terminal a line per blob (bytes, rate) redrawn\n"
    "in place with a total; otherwise one line per blob as it finishes and a summary.\n"
    "\n"
    "options:\n"
    "  --all                   copy every image of an index (the default)\n"
    "  --platform OS/ARCH[/VARIANT]  copy only that platform's image\n"
    "  --referrers             copy the referrers (signatures, SBOMs) of what is copied\n"
    "  --jobs N                parallel blob transfers (default 4)\n" CLI_CLIENT_OPTS_HELP "\n"
    "Prints the digest of the manifest written at DST on standard output (unless --quiet,\n"
    "which also silences the progress).\n";

static void print_note(const char *line, void *payload)
{
    (void)payload;
    fprintf(stderr, "berth: %s\n", line);
}

/* The first SIGINT/SIGTERM stops the transfers, so that the copy's failure path cancels its
 * upload sessions and removes its staging files; a second one ends the process at once. */
static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
    berth_client_interrupt();
    signal(sig, SIG_DFL);
}

int cmd_copy(int argc, char **argv)
{
    cli_client_opts co = {0};
    berth_copy_options opts = {0};
    berth_client *c = NULL;
    cli_progress *prog = NULL;
    const char *pos[2];
    int npos = 0, ret = 2;
    berth_digest d;

    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        int t = cli_client_opt(&co, "copy", argc, argv, &i);
        if (t < 0) {
            goto out;
        }
        if (t > 0) {
            continue;
        }
        if (strcmp(argv[i], "--all") == 0 || strcmp(argv[i], "-a") == 0) {
            opts.all = true;
        } else if (strcmp(argv[i], "--referrers") == 0) {
            opts.referrers = true;
        } else if (strcmp(argv[i], "--platform") == 0 && i + 1 < argc) {
            opts.platform = argv[++i];
            if (!strchr(opts.platform, '/')) {
                fprintf(stderr, "berth copy: --platform wants OS/ARCH[/VARIANT]\n");
                goto out;
            }
        } else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
            uint64_t n;
            i++;
            if (berth_parse_u64(&n, argv[i], strlen(argv[i]), 64) < 0 || n == 0) {
                fprintf(stderr, "berth copy: --jobs wants a number from 1 to 64\n");
                goto out;
            }
            opts.jobs = (unsigned)n;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "berth copy: unknown or incomplete option %s\n", argv[i]);
            goto out;
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            fprintf(stderr, "berth copy: too many arguments\n%s", help);
            goto out;
        }
    }
    if (npos != 2) {
        fprintf(stderr, "%s", help);
        goto out;
    }
    if (opts.all && opts.platform) {
        fprintf(stderr, "berth copy: --all and --platform exclude each other\n");
        goto out;
    }
    ret = 1;
    if (cli_client_open(&c, &co, "copy") < 0) {
        goto out;
    }
    prog = cli_progress_new(cli_progress_mode_for(!co.quiet && !co.verbose, stderr), stderr);
    opts.progress = cli_progress_update;
    opts.progress_payload = prog;
    if (co.verbose) {
        opts.note = print_note;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (berth_copy(c, pos[0], pos[1], &opts, &d) < 0) {
        cli_progress_free(prog);
        prog = NULL;
        cli_client_fail("copy");
        ret = got_signal ? 128 + got_signal : 1; /* as a shell reports a signal */
        goto out;
    }
    cli_progress_done(prog);
    cli_progress_free(prog);
    prog = NULL;
    if (!co.quiet) {
        printf("%s\n", d.str);
    }
    ret = 0;
out:
    cli_progress_free(prog);
    berth_client_free(c);
    cli_client_opts_dispose(&co);
    return ret;
}
