/* A partitioned hash join of two relations of 16-byte tuples (8-byte key, 8-byte payload).

   hashjoin [-t THREADS] [-s SEED] R_TUPLES S_TUPLES [MISS_PERCENT]

   R has the unique keys 1..R_TUPLES in a scrambled order; each S tuple carries the key of a
   random R tuple, or (MISS_PERCENT, default 10) a key that matches nothing. Phases, each run by
   all threads:
     generate   each thread writes its share of R and S (first touch by that thread)
     partition  each thread counts, then scatters, its share of R and S into one partition per
                thread by a hash of the key (a histogram pass, then writes to every partition)
     build      thread p builds an open-addressing (linear probing) hash table, twice the size
                of its R partition, on R partition p
     probe      thread p probes that table with S partition p, counting matches and summing
                the matched payloads
   Output layout depends only on the arguments: the partitions are placed by the histograms,
   so the printed result is the same for every run with the same arguments. */
#include "suite.h"

typedef struct { uint64_t key, val; } tuple_t;

typedef struct {
    uint64_t nr, ns, seed;
    int threads, miss;
    tuple_t *r, *s, *rp, *sp;       /* relations, partitioned copies */
    uint64_t *hist_r, *hist_s;      /* [thread][partition] counts, then write cursors */
    uint64_t *start_r, *start_s;    /* partition p occupies [start[p], start[p + 1]) */
    uint64_t matches[MAX_THREADS], sums[MAX_THREADS];
    pthread_barrier_t bar;
} join_t;

static inline uint64_t hash_key(uint64_t k) { return mix64(k); }

static inline uint64_t rkey(uint64_t i, uint64_t n, uint64_t seed)
{
    /* a bijection of 0..n-1 (cycle-walking over the next power of two), plus one */
    uint64_t mask = 1;
    while (mask < n)
        mask <<= 1;
    mask--;
    uint64_t x = i;
    do {
        x = (x * 0x9e3779b97f4a7c15ULL + (seed | 1)) & mask;
        x ^= x >> 17;
        x = (x * 0xbf58476d1ce4e5b9ULL) & mask;
        x ^= x >> 11;
    } while (x >= n);
    return x + 1;
}

static void scatter(join_t *j, int id, const tuple_t *in, uint64_t lo, uint64_t hi, tuple_t *out,
                    uint64_t *hist)
{
    uint64_t *cur = hist + (uint64_t)id * j->threads;
    for (uint64_t i = lo; i < hi; i++) {
        uint64_t p = hash_key(in[i].key) % (uint64_t)j->threads;
        out[cur[p]++] = in[i];
    }
}

static void cursors(join_t *j, uint64_t *hist, uint64_t *start)
{
    uint64_t s = 0;
    for (int p = 0; p < j->threads; p++) {
        start[p] = s;
        for (int t = 0; t < j->threads; t++) {
            uint64_t c = hist[(uint64_t)t * j->threads + p];
            hist[(uint64_t)t * j->threads + p] = s;
            s += c;
        }
    }
    start[j->threads] = s;
}

static void work(int id, void *arg)
{
    join_t *j = arg;
    uint64_t rlo, rhi, slo, shi;
    int T = j->threads;
    split(j->nr, T, id, &rlo, &rhi);
    split(j->ns, T, id, &slo, &shi);

    /* generate */
    for (uint64_t i = rlo; i < rhi; i++) {
        j->r[i].key = rkey(i, j->nr, j->seed);
        j->r[i].val = i;
    }
    for (uint64_t i = slo; i < shi; i++) {
        rng_t g = rng_at(j->seed, i);
        uint64_t x = rng_next(&g);
        if (x % 100 < (uint64_t)j->miss)
            j->s[i].key = j->nr + 1 + (x >> 8) % j->nr;
        else
            j->s[i].key = rkey((x >> 8) % j->nr, j->nr, j->seed);
        j->s[i].val = i;
    }

    /* partition: histogram, prefix sums (thread 0), scatter */
    uint64_t *hr = j->hist_r + (uint64_t)id * T, *hs = j->hist_s + (uint64_t)id * T;
    for (uint64_t i = rlo; i < rhi; i++)
        hr[hash_key(j->r[i].key) % (uint64_t)T]++;
    for (uint64_t i = slo; i < shi; i++)
        hs[hash_key(j->s[i].key) % (uint64_t)T]++;
    pthread_barrier_wait(&j->bar);
    if (id == 0) {
        cursors(j, j->hist_r, j->start_r);
        cursors(j, j->hist_s, j->start_s);
    }
    pthread_barrier_wait(&j->bar);
    scatter(j, id, j->r, rlo, rhi, j->rp, j->hist_r);
    scatter(j, id, j->s, slo, shi, j->sp, j->hist_s);
    pthread_barrier_wait(&j->bar);

    /* build on R partition `id` */
    uint64_t n = j->start_r[id + 1] - j->start_r[id], cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    tuple_t *ht = calloc(cap, sizeof *ht);
    if (!ht)
        die("out of memory");
    for (uint64_t i = j->start_r[id]; i < j->start_r[id + 1]; i++) {
        uint64_t h = (hash_key(j->rp[i].key) / (uint64_t)T) & (cap - 1);
        while (ht[h].key)
            h = (h + 1) & (cap - 1);
        ht[h] = j->rp[i];
    }

    /* probe with S partition `id` */
    uint64_t matches = 0, sum = 0;
    for (uint64_t i = j->start_s[id]; i < j->start_s[id + 1]; i++) {
        uint64_t k = j->sp[i].key, h = (hash_key(k) / (uint64_t)T) & (cap - 1);
        for (; ht[h].key; h = (h + 1) & (cap - 1))
            if (ht[h].key == k) {
                matches++;
                sum += ht[h].val ^ j->sp[i].val;
                break;
            }
    }
    j->matches[id] = matches;
    j->sums[id] = sum;
    free(ht);
}

int main(int argc, char **argv)
{
    opts_t o = parse_opts(argc, argv, "[-t THREADS] [-s SEED] R_TUPLES S_TUPLES [MISS_PERCENT]", 2, 3);
    join_t j = { 0 };
    j.nr = parse_u64("R_TUPLES", o.pos[0], 1, 1ULL << 34);
    j.ns = parse_u64("S_TUPLES", o.pos[1], 1, 1ULL << 36);
    j.miss = o.npos > 2 ? (int)parse_u64("MISS_PERCENT", o.pos[2], 0, 100) : 10;
    j.seed = o.seed;
    j.threads = o.threads;
    j.r = xmalloc(j.nr * sizeof *j.r);
    j.s = xmalloc(j.ns * sizeof *j.s);
    j.rp = xmalloc(j.nr * sizeof *j.rp);
    j.sp = xmalloc(j.ns * sizeof *j.sp);
    j.hist_r = calloc((size_t)j.threads * j.threads, sizeof *j.hist_r);
    j.hist_s = calloc((size_t)j.threads * j.threads, sizeof *j.hist_s);
    j.start_r = xmalloc((j.threads + 1) * sizeof *j.start_r);
    j.start_s = xmalloc((j.threads + 1) * sizeof *j.start_s);
    if (!j.hist_r || !j.hist_s)
        die("out of memory");
    pthread_barrier_init(&j.bar, NULL, j.threads);
    run_threads(j.threads, work, &j);
    uint64_t matches = 0, sum = 0;
    for (int t = 0; t < j.threads; t++) {
        matches += j.matches[t];
        sum += j.sums[t];
    }
    printf("hashjoin R %llu S %llu matches %llu checksum %llu\n", (unsigned long long)j.nr,
           (unsigned long long)j.ns, (unsigned long long)matches, (unsigned long long)sum);
    return 0;
}
