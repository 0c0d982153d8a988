/* A key-value store (open-addressing hash table) under a Zipfian get/put load.

   kvstore [-t THREADS] [-s SEED] KEYS OPS [GET_PERCENT [THETA_x100]]

   The table has a power-of-two number of 64-byte slots (an 8-byte key and a 56-byte value),
   at least KEYS / 0.75, with linear probing. The main thread loads the keys 1..KEYS (as a
   store is loaded before it serves; every page is first touched by that thread); then each
   thread runs its share of OPS operations: a key drawn from a Zipfian distribution (THETA_x100,
   default 99 for theta 0.99, Gray et al.'s generator as in YCSB) over the key ranks, the rank
   scrambled into a key (YCSB's scrambled Zipfian: the hot keys are spread over the table); a
   get (GET_PERCENT, default 95) reads the whole value, a put overwrites it. Puts are not
   locked: a get may see a value being written, which does not change the printed counts. */
#include "suite.h"
#include <math.h>

#define VAL_WORDS 7
#define OPS_STREAM 4096

typedef struct { uint64_t key; uint64_t val[VAL_WORDS]; } slot_t;

typedef struct {
    uint64_t keys, ops, seed, cap;
    int threads, get_pct;
    double theta, zetan, alpha, eta, half_pow;
    slot_t *table;
    uint64_t gets[MAX_THREADS], puts[MAX_THREADS], hits[MAX_THREADS];
    uint64_t seen[MAX_THREADS];     /* a sum of the values read, so the copies are kept */
} kv_t;

static inline uint64_t key_of(uint64_t rank, uint64_t n) { return mix64(rank) % n + 1; }

/* zeta(n, theta) = sum_{i=1..n} i^-theta: exact for the first terms, then the integral of the
   tail (Euler-Maclaurin midpoint rule), which differs by far less than the float precision
   that matters here and costs O(1) instead of O(n) */
static double zeta(uint64_t n, double theta)
{
    uint64_t k = n < 100000 ? n : 100000;
    double s = 0.0;
    for (uint64_t i = 1; i <= k; i++)
        s += pow((double)i, -theta);
    if (n > k)
        s += (pow((double)n + 0.5, 1.0 - theta) - pow((double)k + 0.5, 1.0 - theta)) / (1.0 - theta);
    return s;
}

static inline uint64_t zipf(kv_t *kv, rng_t *r)
{
    double u = rng_unit(r), uz = u * kv->zetan;
    if (uz < 1.0)
        return 0;
    if (uz < 1.0 + kv->half_pow)
        return 1;
    uint64_t v = (uint64_t)((double)kv->keys * pow(kv->eta * u - kv->eta + 1.0, kv->alpha));
    return v < kv->keys ? v : kv->keys - 1;
}

static inline uint64_t slot_of(kv_t *kv, uint64_t key)
{
    uint64_t h = mix64(key ^ 0x5851f42d4c957f2dULL) & (kv->cap - 1);
    while (kv->table[h].key != key && kv->table[h].key != 0)
        h = (h + 1) & (kv->cap - 1);
    return h;
}

static void load(kv_t *kv)
{
    kv->table = calloc(kv->cap, sizeof *kv->table);
    if (!kv->table)
        die("out of memory");
    for (uint64_t k = 1; k <= kv->keys; k++) {
        slot_t *s = &kv->table[slot_of(kv, k)];
        s->key = k;
        for (int w = 0; w < VAL_WORDS; w++)
            s->val[w] = k * (w + 1);
    }
}

static void serve(int id, void *arg)
{
    kv_t *kv = arg;
    uint64_t lo, hi, gets = 0, puts = 0, hits = 0, seen = 0;
    rng_t r;
    /* whole blocks of OPS_STREAM operations per thread, one stream each: the operations do not
       depend on the number of threads */
    split((kv->ops + OPS_STREAM - 1) / OPS_STREAM, kv->threads, id, &lo, &hi);
    lo *= OPS_STREAM;
    hi = hi * OPS_STREAM < kv->ops ? hi * OPS_STREAM : kv->ops;
    for (uint64_t i = lo; i < hi; i++) {
        if (i % OPS_STREAM == 0)
            r = rng_at(kv->seed, i / OPS_STREAM);
        uint64_t key = key_of(zipf(kv, &r), kv->keys);
        slot_t *s = &kv->table[slot_of(kv, key)];
        if (rng_next(&r) % 100 < (uint64_t)kv->get_pct) {
            gets++;
            if (s->key == key) {
                hits++;
                for (int w = 0; w < VAL_WORDS; w++)     /* the whole value is read */
                    seen += s->val[w];
            }
        } else {
            puts++;
            for (int w = 0; w < VAL_WORDS; w++)
                s->val[w] = i + (uint64_t)w;
        }
    }
    kv->gets[id] = gets;
    kv->puts[id] = puts;
    kv->hits[id] = hits;
    kv->seen[id] = seen;
}

int main(int argc, char **argv)
{
    opts_t o = parse_opts(argc, argv, "[-t THREADS] [-s SEED] KEYS OPS [GET_PERCENT [THETA_x100]]", 2, 4);
    kv_t kv = { 0 };
    kv.keys = parse_u64("KEYS", o.pos[0], 2, 1ULL << 34);
    kv.ops = parse_u64("OPS", o.pos[1], 1, 1ULL << 40);
    kv.get_pct = o.npos > 2 ? (int)parse_u64("GET_PERCENT", o.pos[2], 0, 100) : 95;
    kv.theta = (o.npos > 3 ? (double)parse_u64("THETA_x100", o.pos[3], 1, 99) : 99.0) / 100.0;
    kv.seed = o.seed;
    kv.threads = o.threads;
    kv.cap = 16;
    while (kv.cap * 3 < kv.keys * 4)
        kv.cap <<= 1;
    kv.zetan = zeta(kv.keys, kv.theta);
    kv.alpha = 1.0 / (1.0 - kv.theta);
    kv.half_pow = pow(0.5, kv.theta);
    kv.eta = (1.0 - pow(2.0 / (double)kv.keys, 1.0 - kv.theta)) / (1.0 - zeta(2, kv.theta) / kv.zetan);
    load(&kv);
    run_threads(kv.threads, serve, &kv);
    uint64_t gets = 0, puts = 0, hits = 0;
    for (int t = 0; t < kv.threads; t++) {
        gets += kv.gets[t];
        puts += kv.puts[t];
        hits += kv.hits[t];
    }
    printf("kvstore keys %llu slots %llu ops %llu gets %llu puts %llu hits %llu\n",
           (unsigned long long)kv.keys, (unsigned long long)kv.cap, (unsigned long long)kv.ops,
           (unsigned long long)gets, (unsigned long long)puts, (unsigned long long)hits);
    return 0;
}
