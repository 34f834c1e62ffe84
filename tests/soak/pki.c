/* SPDX-License-Identifier: MIT */
/* Configs built from the generated test PKI (tests/support/gen-pki.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soak.h"

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open %s (is the test PKI generated?)", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger)
                free(buf);
            buf = bigger;
        }
    }
    fclose(f);
    if (!buf)
        die("out of memory");
    *len = n;
    return buf;
}

static void check(hbone_config *cfg, int r, const char *what)
{
    if (r < 0)
        die("%s: %s (%s)", what, hbone_strerror(r), hbone_config_error_detail(cfg));
}

static hbone_config *config_new(mem_counter *mem)
{
    hbone_config *cfg;
    hbone_mem *hook = mem_counter_hook(mem);
    int r = hbone_config_new(&cfg, hook);
    hbone_mem_del(hook); /* the config keeps a copy */
    if (r < 0)
        die("hbone_config_new: %s", hbone_strerror(r));
    /* Handshakes and PINGs that take long are not what this soaks: under
     * valgrind on a busy machine they can, so the timers are generous. */
    if (hbone_config_set_handshake_timeout(cfg, 60000) < 0 ||
        hbone_config_set_keepalive(cfg, 10000, 60000) < 0)
        die("cannot set the timers");
    return cfg;
}

static void set_identity(hbone_config *cfg, const char *dir, const char *leaf)
{
    char chain_name[64], key_name[64];
    snprintf(chain_name, sizeof(chain_name), "%s.chain.pem", leaf);
    snprintf(key_name, sizeof(key_name), "%s.key", leaf);
    size_t chain_len, key_len;
    char *chain = slurp(dir, chain_name, &chain_len);
    char *key = slurp(dir, key_name, &key_len);
    check(cfg, hbone_config_set_certificate(cfg, chain, chain_len, key, key_len), leaf);
    free(chain);
    free(key);
}

static void add_bundle(hbone_config *cfg, const char *dir, const char *file)
{
    size_t len;
    char *pem = slurp(dir, file, &len);
    check(
        cfg,
        hbone_config_add_trust_bundle(cfg, SOAK_TRUST_DOMAIN, strlen(SOAK_TRUST_DOMAIN), pem, len),
        file);
    free(pem);
}

hbone_config *config_server(const char *dir, int gen, mem_counter *mem)
{
    hbone_config *cfg = config_new(mem);
    set_identity(cfg, dir, gen % 2 ? "server-next" : "server");
    add_bundle(cfg, dir, "bundle-cluster.local.pem");
    return cfg;
}

hbone_config *config_client(const char *dir, mem_counter *mem)
{
    hbone_config *cfg = config_new(mem);
    set_identity(cfg, dir, "client");
    add_bundle(cfg, dir, "bundle-cluster.local.pem"); /* both roots: any generation */
    return cfg;
}

hbone_config *config_probe(const char *dir, int gen, mem_counter *mem)
{
    hbone_config *cfg = config_new(mem);
    set_identity(cfg, dir, "client");
    add_bundle(cfg, dir, gen % 2 ? "root-rsa.pem" : "root-a.pem");
    return cfg;
}
