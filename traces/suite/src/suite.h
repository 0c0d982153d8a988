/* Shared helpers of the suite's C workloads: a seeded generator, option parsing, threads.
   Every workload takes [-t THREADS] [-s SEED] before its positional sizes; a bad argument is
   reported on one line and the program exits with status 2. */
#ifndef SUITE_H
#define SUITE_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 64

static const char *prog_name = "suite";

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...);

#include <stdarg.h>
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", prog_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* splitmix64: a stream per (seed, index), so data do not depend on the number of threads. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct { uint64_t s; } rng_t;

static inline rng_t rng_at(uint64_t seed, uint64_t stream)
{
    rng_t r = { mix64(seed * 0x9e3779b97f4a7c15ULL + mix64(stream + 1)) };
    return r;
}

static inline uint64_t rng_next(rng_t *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return mix64(r->s);
}

/* uniform double in [0, 1) */
static inline double rng_unit(rng_t *r) { return (rng_next(r) >> 11) * 0x1.0p-53; }

static uint64_t parse_u64(const char *what, const char *s, uint64_t lo, uint64_t hi)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
        die("%s must be an integer in %llu..%llu, got '%s'", what, (unsigned long long)lo,
            (unsigned long long)hi, s);
    return v;
}

typedef struct {
    int threads;
    uint64_t seed;
    int npos;
    char **pos;
} opts_t;

/* -t THREADS (4), -s SEED (1); the rest are positional. */
static opts_t parse_opts(int argc, char **argv, const char *usage, int min_pos, int max_pos)
{
    opts_t o = { 4, 1, 0, NULL };
    int c;
    prog_name = argv[0];
    while ((c = getopt(argc, argv, "t:s:h")) != -1) {
        switch (c) {
        case 't': o.threads = (int)parse_u64("-t", optarg, 1, MAX_THREADS); break;
        case 's': o.seed = parse_u64("-s", optarg, 0, UINT64_MAX); break;
        case 'h': printf("usage: %s %s\n", argv[0], usage); exit(0);
        default: die("usage: %s %s", argv[0], usage);
        }
    }
    o.npos = argc - optind;
    o.pos = argv + optind;
    if (o.npos < min_pos || o.npos > max_pos)
        die("usage: %s %s", argv[0], usage);
    return o;
}

__attribute__((unused)) static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

/* Run fn(id, arg) on `threads` threads (0..threads-1) started together at a barrier; the main
   thread only waits. */
typedef void (*work_fn)(int id, void *arg);
typedef struct { work_fn fn; void *arg; int id; pthread_barrier_t *bar; } job_t;

static void *job_main(void *p)
{
    job_t *j = p;
    pthread_barrier_wait(j->bar);
    j->fn(j->id, j->arg);
    return NULL;
}

static void run_threads(int threads, work_fn fn, void *arg)
{
    pthread_t t[MAX_THREADS];
    job_t j[MAX_THREADS];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, threads);
    for (int i = 0; i < threads; i++) {
        j[i] = (job_t){ fn, arg, i, &bar };
        if (pthread_create(&t[i], NULL, job_main, &j[i]))
            die("cannot create thread %d", i);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
}

/* [lo, hi) of thread id's share of n items */
static inline void split(uint64_t n, int threads, int id, uint64_t *lo, uint64_t *hi)
{
    *lo = n * id / threads;
    *hi = n * (id + 1) / threads;
}

#endif
