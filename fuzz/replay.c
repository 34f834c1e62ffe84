/* SPDX-License-Identifier: MIT */
/*
 * Replay driver: runs files through a fuzz target's LLVMFuzzerTestOneInput()
 * without libFuzzer, so every corpus is also an ordinary test under any
 * compiler (gcc, valgrind, sanitizers).
 *
 *   fuzz_<target> FILE|DIR...
 *
 * Directories are read one level deep, in name order so that failures are
 * reproducible; hidden files are skipped. Each input gets a heap buffer of
 * exactly its size, so ASan or valgrind catch a read one byte past the end.
 * A target that finds a problem aborts, which fails the test.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static size_t replayed;

/* Returns 0, or -1 after printing why the file could not be read. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    /* malloc(0) may return NULL; the targets accept NULL with size 0. */
    uint8_t *buf = size ? malloc(size) : NULL;
    if (size && !buf) {
        fprintf(stderr, "%s: out of memory for %zu bytes\n", path, size);
        fclose(f);
        return -1;
    }
    if (size && fread(buf, 1, size, f) != size) {
        fprintf(stderr, "%s: short read\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    /* Name the input before running it: if it crashes, this is the last
     * line of the test log. */
    fprintf(stderr, "replaying %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput(buf, size);
    free(buf);
    replayed++;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, cap * sizeof(*names));
            if (!grown) {
                rc = -1;
                break;
            }
            names = grown;
        }
        size_t len = strlen(dir) + 1 + strlen(e->d_name) + 1;
        names[count] = malloc(len);
        if (!names[count]) {
            rc = -1;
            break;
        }
        snprintf(names[count], len, "%s/%s", dir, e->d_name);
        count++;
    }
    closedir(d);
    if (rc < 0)
        fprintf(stderr, "%s: out of memory listing the directory\n", dir);
    if (count)
        qsort(names, count, sizeof(*names), compare_names);
    for (size_t i = 0; i < count; i++) {
        struct stat st;
        /* Only regular files: a corpus has no subdirectories worth reading,
         * and a stray FIFO must not hang the test. */
        if (rc == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode) && replay_file(names[i]) < 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i]) < 0)
                rc = 1;
        } else if (replay_file(argv[i]) < 0) {
            rc = 1;
        }
    }
    printf("%zu inputs replayed\n", replayed);
    /* An empty corpus would make the test pass while testing nothing. */
    if (replayed == 0) {
        fprintf(stderr, "no inputs found\n");
        rc = 1;
    }
    return rc;
}
