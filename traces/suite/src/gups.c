/* GUPS with a hot set: random read-modify-write updates of 8-byte words of a large table, most
   of them to a small hot region (as in the HeMem and Memtis GUPS benchmark).

   gups [-t THREADS] [-s SEED] LOG2_WORDS UPDATES [HOT_PERCENT [HOT_UPDATE_PERCENT]]

   The table has 2^LOG2_WORDS words; each thread first writes its share (first touch by that
   thread), then makes its share of UPDATES updates, table[i] ^= r, where i is uniform over a
   hot region of HOT_PERCENT (default 10) of the table with probability HOT_UPDATE_PERCENT
   (default 90), else uniform over the whole table. The hot region starts at a 2 MiB-aligned
   offset chosen from the seed. Updates are not atomic (GUPS tolerates the rare lost update),
   so the printed checksum may differ between runs; the update counts do not. */
#include "suite.h"

#define UPD_STREAM 4096

typedef struct {
    uint64_t words, updates, seed, hot_lo, hot_words;
    int threads, hot_upd;
    uint64_t *table;
    uint64_t hot_count[MAX_THREADS];
} gups_t;

static void work(int id, void *arg)
{
    gups_t *g = arg;
    uint64_t *table = g->table;         /* locals: the loop touches only the table */
    const uint64_t words = g->words, hot_lo = g->hot_lo, hot_words = g->hot_words;
    const uint64_t hot_upd = (uint64_t)g->hot_upd, updates = g->updates, seed = g->seed;
    uint64_t lo, hi, hot = 0;
    split(words, g->threads, id, &lo, &hi);
    for (uint64_t i = lo; i < hi; i++)
        table[i] = i;
    /* whole blocks of UPD_STREAM updates per thread, one stream each */
    split((updates + UPD_STREAM - 1) / UPD_STREAM, g->threads, id, &lo, &hi);
    lo *= UPD_STREAM;
    hi = hi * UPD_STREAM < updates ? hi * UPD_STREAM : updates;
    rng_t r;
    for (uint64_t u = lo; u < hi; u++) {
        if (u % UPD_STREAM == 0)
            r = rng_at(seed, u / UPD_STREAM);
        uint64_t x = rng_next(&r), i;
        if ((x >> 32) % 100 < hot_upd) {
            i = hot_lo + (x & 0xffffffffu) % hot_words;
            hot++;
        } else {
            i = rng_next(&r) & (words - 1);
        }
        table[i] ^= x;
    }
    g->hot_count[id] = hot;
}

int main(int argc, char **argv)
{
    opts_t o = parse_opts(argc, argv,
                          "[-t THREADS] [-s SEED] LOG2_WORDS UPDATES [HOT_PERCENT [HOT_UPDATE_PERCENT]]", 2, 4);
    gups_t g = { 0 };
    int log2w = (int)parse_u64("LOG2_WORDS", o.pos[0], 10, 36);
    g.words = 1ULL << log2w;
    g.updates = parse_u64("UPDATES", o.pos[1], 1, 1ULL << 40);
    int hot_pct = o.npos > 2 ? (int)parse_u64("HOT_PERCENT", o.pos[2], 1, 100) : 10;
    g.hot_upd = o.npos > 3 ? (int)parse_u64("HOT_UPDATE_PERCENT", o.pos[3], 0, 100) : 90;
    g.seed = o.seed;
    g.threads = o.threads;
    g.hot_words = g.words * (uint64_t)hot_pct / 100;
    if (g.hot_words == 0)
        g.hot_words = 1;
    const uint64_t align = (2u << 20) / sizeof(uint64_t);
    uint64_t room = (g.words - g.hot_words) / align;
    rng_t r = rng_at(g.seed, UINT64_MAX);
    g.hot_lo = room ? (rng_next(&r) % (room + 1)) * align : 0;
    g.table = xmalloc(g.words * sizeof *g.table);
    run_threads(g.threads, work, &g);
    uint64_t hot = 0, sum = 0;
    for (int t = 0; t < g.threads; t++)
        hot += g.hot_count[t];
    for (uint64_t i = 0; i < g.words; i++)
        sum ^= g.table[i];
    printf("gups words %llu updates %llu hot-updates %llu hot-region %llu+%llu checksum %016llx\n",
           (unsigned long long)g.words, (unsigned long long)g.updates, (unsigned long long)hot,
           (unsigned long long)g.hot_lo, (unsigned long long)g.hot_words, (unsigned long long)sum);
    return 0;
}
