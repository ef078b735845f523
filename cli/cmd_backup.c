/*
 * cmd_backup.c: `strata backup DIR FILE`, `strata restore FILE DIR` and
 * `strata phrase`: online backups, restore into a new directory, and a
 * fresh recovery phrase.
 *
 * Progress (on a terminal only) watches the files the library writes,
 * since one call does the work: a backup first copies the replica into
 * FILE.tmpdir-XXXXXX/data.mdb (compacted, at most the map's used bytes),
 * then streams it into FILE.tmp; a restore writes DIR/data.mdb from the
 * backup's data.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static uint64_t
file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Bytes a backup to @p file has written so far: its copy, then its
 * stream (the copy is removed when the stream is done). */
static uint64_t
backup_done(void *ctx)
{
    const char *file = ctx;
    char dir[4200], tmp[4200], *slash;
    const char *base;
    struct dirent *de;
    uint64_t n;
    DIR *d;

    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    n = file_size(tmp);
    snprintf(dir, sizeof dir, "%s", file);
    slash = strrchr(dir, '/');
    base = slash ? slash + 1 : file;
    if (slash != NULL)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if ((d = opendir(dir)) == NULL)
        return n;
    while ((de = readdir(d)) != NULL) {
        size_t bl = strlen(base);

        if (strncmp(de->d_name, base, bl) == 0 &&
            strncmp(de->d_name + bl, ".tmpdir-", 8) == 0) {
            char data[8400];

            snprintf(data, sizeof data, "%s/%s/data.mdb", dir, de->d_name);
            n += file_size(data);
        }
    }
    closedir(d);
    return n;
}

static uint64_t
restore_done(void *ctx)
{
    char data[4200];

    snprintf(data, sizeof data, "%s/data.mdb", (const char *)ctx);
    return file_size(data);
}

static json_t *
info_json(const crdt_backup_info *b)
{
    char space[2 * CRDT_SPACE_ID_BYTES + 1], id[2 * CRDT_HASH_BYTES + 1];
    char hash[2 * CRDT_HASH_BYTES + 1];

    crdt_hex(space, b->space_id, CRDT_SPACE_ID_BYTES);
    crdt_hex(id, b->epoch_id, CRDT_HASH_BYTES);
    crdt_hex(hash, b->state_hash, CRDT_HASH_BYTES);
    return json_pack("{s:s, s:{s:I, s:s}, s:s, s:I, s:I}", "space_id", space,
                     "epoch", "number", (json_int_t)b->epoch_number, "id", id,
                     "state_hash", hash, "ops", (json_int_t)b->ops_total,
                     "created_ms", (json_int_t)b->created_ms);
}

static int
print_info(const crdt_backup_info *b, int as_json, const char *verb,
           const char *where)
{
    char hash[2 * CRDT_HASH_BYTES + 1];

    if (as_json)
        return cli_emit(info_json(b));
    crdt_hex(hash, b->state_hash, CRDT_HASH_BYTES);
    printf("%s %s: epoch %llu, %llu ops, state hash %s\n", verb, where,
           (unsigned long long)b->epoch_number,
           (unsigned long long)b->ops_total, hash);
    return CLI_OK;
}

int
cmd_backup(const cli_cmd *cmd, int argc, char **argv)
{
    static const cli_opt opts[] = { { "json", 0 }, { NULL, 0 } };
    crdt_backup_info info;
    crdt_replica *r;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, opts, 2, 2);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if ((rc = cli_open(&r, a.pos[0], 0)) != CLI_OK)
        return rc;
    {
        crdt_env_stats es;
        cli_progress p;
        cli_progress_watch w;

        /* the copy and the stream are each at most the used bytes */
        if (crdt_replica_env_stats(r, &es) != CRDT_OK)
            es.map_used = 0; /* a count only */
        cli_progress_init(&p, "backup", "bytes");
        cli_progress_watch_start(&w, &p, 2 * es.map_used, backup_done,
                                 (void *)a.pos[1]);
        rc = crdt_backup(&info, r, a.pos[1]);
        cli_progress_watch_stop(&w, rc == CRDT_OK);
    }
    crdt_replica_close(r);
    if (rc < 0)
        return cli_fail("backup", rc);
    return print_info(&info, cli_has(&a, 0), "backed up to", a.pos[1]);
}

int
cmd_restore(const cli_cmd *cmd, int argc, char **argv)
{
    static const cli_opt opts[] = { { "json", 0 }, { NULL, 0 } };
    crdt_backup_info info;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, opts, 2, 2);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    {
        cli_progress p;
        cli_progress_watch w;

        cli_progress_init(&p, "restore", "bytes");
        cli_progress_watch_start(&w, &p, file_size(a.pos[0]), restore_done,
                                 (void *)a.pos[1]);
        rc = crdt_restore(&info, a.pos[0], a.pos[1]);
        cli_progress_watch_stop(&w, rc == CRDT_OK);
    }
    if (rc == CRDT_EEXISTS)
        return cli_error(CLI_EUSAGE, "restore",
                         "%s is not empty; restore never overwrites a replica",
                         a.pos[1]);
    if (rc == CRDT_ENOTFOUND)
        return cli_error(CLI_ENOTFOUND, "restore", "%s: no such backup",
                         a.pos[0]);
    if (rc == CRDT_ECORRUPT)
        return cli_error(CLI_EDATA, "restore",
                         "%s: the backup is damaged (hash mismatch)",
                         a.pos[0]);
    if (rc < 0)
        return cli_fail("restore", rc);
    return print_info(&info, cli_has(&a, 0), "restored into", a.pos[1]);
}

int
cmd_phrase(const cli_cmd *cmd, int argc, char **argv)
{
    static const cli_opt opts[] = { { "words", 1 }, { NULL, 0 } };
    char buf[512];
    long long words = 24;
    cli_args a;
    int rc;

    rc = cli_parse(&a, cmd, argc, argv, opts, 0, 0);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (a.opt[0] != NULL &&
        (cli_parse_int64(&words, a.opt[0]) < 0 || words < 12 || words > 24))
        return cli_usage(cmd, "--words must be 12 to 24");
    rc = crdt_phrase_generate(buf, sizeof buf, (int)words);
    if (rc < 0)
        return cli_fail("phrase", rc);
    printf("%s\n", buf);
    memset(buf, 0, sizeof buf);
    return CLI_OK;
}
