/*
 * A main for the fuzz drivers without libFuzzer: runs LLVMFuzzerTestOneInput once on every file named on the
 * command line, or in a directory named there (its regular files, in name order; names starting with '.'
 * are skipped). A driver reports a failure by aborting, as under libFuzzer, so a replay that returns 0 ran
 * every input cleanly. Exit status: 0; 1 when a path cannot be read or no input was found at all.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_INPUT_MAX (1u << 20) /* bytes in one input (libFuzzer's default -max_len is far lower) */

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL, *exact = NULL;
    size_t n;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if ((buf = malloc(REPLAY_INPUT_MAX + 1)) == NULL)
        goto out;
    n = fread(buf, 1, REPLAY_INPUT_MAX + 1, f);
    if (ferror(f) || n > REPLAY_INPUT_MAX) {
        fprintf(stderr, "replay: %s: unreadable or over %u bytes\n", path, REPLAY_INPUT_MAX);
        goto out;
    }
    /* A copy of the exact length, as libFuzzer passes it: a read past the input trips ASan. */
    if ((exact = malloc(n > 0 ? n : 1)) == NULL)
        goto out;
    memcpy(exact, buf, n);
    LLVMFuzzerTestOneInput(exact, n);
    rc = 0;
out:
    free(exact);
    free(buf);
    fclose(f);
    return rc;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Replays `path` (a file, or a directory's files). Returns the inputs run, or -1. */
static long replay_path(const char *path)
{
    struct stat st;
    struct dirent **names = NULL;
    long count = 0;
    int n;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path) == 0 ? 1 : -1;
    if ((n = scandir(path, &names, NULL, by_name)) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; ++i) {
        char full[4096];
        if (count >= 0 && names[i]->d_name[0] != '.' &&
            (size_t)snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name) < sizeof(full) &&
            stat(full, &st) == 0 && S_ISREG(st.st_mode))
            count = replay_file(full) == 0 ? count + 1 : -1;
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    long total = 0;
    for (int i = 1; i < argc; ++i) {
        long n = replay_path(argv[i]);
        if (n < 0)
            return 1;
        printf("replay: %s: %ld inputs\n", argv[i], n);
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no input (usage: %s FILE|DIR...)\n", argv[0]);
        return 1;
    }
    printf("replay: %ld inputs, no failure\n", total);
    return 0;
}
