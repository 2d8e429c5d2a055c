/* pgcol.c -- columns of the loader's PostgreSQL results, read in binary (pgload_int.h). */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/pgload_int.h"

/* A bigint or integer column in binary (big-endian); 0 for NULL. */
uint64_t cluster__col_u64(const PGresult *r, int row, int col)
{
    int n = PQgetlength(r, row, col);
    if (PQgetisnull(r, row, col) || (n != 8 && n != 4))
        return 0;
    const uint8_t *p = (const uint8_t *)PQgetvalue(r, row, col);
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* A bytea of 32 bytes into 'out': 1, else 0 (NULL or another length). */
int cluster__col_hash(const PGresult *r, int row, int col, uint8_t out[32])
{
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 32)
        return 0;
    memcpy(out, PQgetvalue(r, row, col), 32);
    return 1;
}

char *cluster__col_dup(const PGresult *r, int row, int col, size_t *len)
{
    size_t n = (size_t)PQgetlength(r, row, col);
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, PQgetvalue(r, row, col), n);
        p[n] = 0;
    }
    if (len)
        *len = n;
    return p;
}
