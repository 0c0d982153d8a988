/* Graph analytics on an R-MAT graph in CSR form: breadth-first search or PageRank.

   graph [-t THREADS] [-s SEED] bfs|pagerank SCALE EDGEFACTOR [ROUNDS]

   2^SCALE vertices, EDGEFACTOR * 2^SCALE edges drawn with the Graph500 R-MAT parameters
   (a = 0.57, b = 0.19, c = 0.19, d = 0.05; no per-level noise) and vertex numbers scrambled by a
   bijection, as Graph500 does. The threads generate the edge list (each its share, from streams
   of the seed that do not depend on the number of threads); the main thread then builds the
   undirected CSR (degrees, prefix sum, fill), as a loader would; then the threads run the
   kernel, each over its share of the vertex range:
     bfs       ROUNDS (2) level-synchronous searches, from roots with a neighbour chosen from the
               seed; each level every thread scans its vertices for the frontier and claims
               unvisited neighbours with compare-and-swap
     pagerank  ROUNDS (3) pull iterations, damping 0.85
   Prints one line of results that depends only on the arguments. */
#include "suite.h"
#include <math.h>

#define CHUNK (1u << 16)           /* edges per generator stream */

typedef struct {
    int scale;
    uint64_t n, m;                  /* vertices, edges */
    uint64_t seed;
    int threads, rounds;
    uint64_t *edges;                /* m pairs (u << 32 | v) */
    uint64_t *off;                  /* n + 1 */
    uint32_t *adj;                  /* 2m */
    int32_t *level;                 /* bfs */
    uint32_t *parent;
    double *rank, *contrib;         /* pagerank */
    pthread_barrier_t bar;
    int cur;                        /* bfs: the level being expanded */
    volatile int more;              /* bfs: some thread claimed a vertex this level */
    uint64_t root;
} graph_t;

static inline uint32_t scramble(uint64_t v, int scale, uint64_t seed)
{
    uint64_t mask = (1ULL << scale) - 1;
    v = (v * 0x9e3779b1ULL + (seed | 1)) & mask;
    v ^= v >> ((scale + 1) / 2);
    v = (v * 0x85ebca6bULL) & mask;
    return (uint32_t)v;
}

static void gen_edges(int id, void *arg)
{
    graph_t *g = arg;
    const uint32_t A = 37356, AB = A + 12452, ABC = AB + 12452;   /* 0.57, 0.19, 0.19 of 65536 */
    uint64_t chunks = (g->m + CHUNK - 1) / CHUNK, c0, c1;
    split(chunks, g->threads, id, &c0, &c1);
    for (uint64_t c = c0; c < c1; c++) {
        rng_t r = rng_at(g->seed, c);
        uint64_t e1 = (c + 1) * CHUNK < g->m ? (c + 1) * CHUNK : g->m;
        for (uint64_t e = c * CHUNK; e < e1; e++) {
            uint64_t u = 0, v = 0, bits = 0;
            for (int l = 0; l < g->scale; l++) {
                if ((l & 3) == 0)
                    bits = rng_next(&r);
                uint32_t q = bits & 0xffff;
                bits >>= 16;
                u = (u << 1) | (q >= AB);
                v = (v << 1) | ((q >= A && q < AB) || q >= ABC);
            }
            g->edges[e] = (uint64_t)scramble(u, g->scale, g->seed) << 32 | scramble(v, g->scale, g->seed);
        }
    }
}

static void build_csr(graph_t *g)
{
    uint64_t *deg = calloc(g->n + 1, sizeof *deg);
    if (!deg)
        die("out of memory");
    for (uint64_t e = 0; e < g->m; e++) {
        deg[g->edges[e] >> 32]++;
        deg[g->edges[e] & 0xffffffffu]++;
    }
    g->off = xmalloc((g->n + 1) * sizeof *g->off);
    uint64_t s = 0;
    for (uint64_t v = 0; v < g->n; v++) {
        g->off[v] = s;
        s += deg[v];
        deg[v] = g->off[v];
    }
    g->off[g->n] = s;
    g->adj = xmalloc(s * sizeof *g->adj);
    for (uint64_t e = 0; e < g->m; e++) {
        uint32_t u = g->edges[e] >> 32, v = g->edges[e] & 0xffffffffu;
        g->adj[deg[u]++] = v;
        g->adj[deg[v]++] = u;
    }
    free(deg);
    free(g->edges);
    g->edges = NULL;
}

static void bfs_work(int id, void *arg)
{
    graph_t *g = arg;
    uint64_t lo, hi;
    split(g->n, g->threads, id, &lo, &hi);
    for (uint64_t v = lo; v < hi; v++) {
        g->level[v] = -1;
        g->parent[v] = UINT32_MAX;
    }
    pthread_barrier_wait(&g->bar);
    if (id == 0) {
        g->level[g->root] = 0;
        g->parent[g->root] = (uint32_t)g->root;
        g->cur = 0;
    }
    for (;;) {
        if (id == 0)
            g->more = 0;
        pthread_barrier_wait(&g->bar);
        int cur = g->cur, claimed = 0;
        for (uint64_t v = lo; v < hi; v++) {
            if (g->level[v] != cur)
                continue;
            for (uint64_t k = g->off[v]; k < g->off[v + 1]; k++) {
                uint32_t w = g->adj[k];
                int32_t unseen = -1;
                if (__atomic_load_n(&g->level[w], __ATOMIC_RELAXED) == -1 &&
                    __atomic_compare_exchange_n(&g->level[w], &unseen, cur + 1, 0,
                                                __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
                    g->parent[w] = (uint32_t)v;
                    claimed = 1;
                }
            }
        }
        if (claimed)
            g->more = 1;
        pthread_barrier_wait(&g->bar);
        if (!g->more)
            break;
        pthread_barrier_wait(&g->bar);      /* everyone has read `more` before it is reset */
        if (id == 0)
            g->cur++;
    }
}

static void pr_work(int id, void *arg)
{
    graph_t *g = arg;
    uint64_t lo, hi;
    const double d = 0.85, base = (1.0 - d) / (double)g->n;
    split(g->n, g->threads, id, &lo, &hi);
    for (uint64_t v = lo; v < hi; v++) {
        uint64_t deg = g->off[v + 1] - g->off[v];
        g->rank[v] = 1.0 / (double)g->n;
        g->contrib[v] = deg ? g->rank[v] / (double)deg : 0.0;
    }
    for (int it = 0; it < g->rounds; it++) {
        pthread_barrier_wait(&g->bar);
        for (uint64_t v = lo; v < hi; v++) {
            double s = 0.0;
            for (uint64_t k = g->off[v]; k < g->off[v + 1]; k++)
                s += g->contrib[g->adj[k]];
            g->rank[v] = base + d * s;
        }
        pthread_barrier_wait(&g->bar);
        for (uint64_t v = lo; v < hi; v++) {
            uint64_t deg = g->off[v + 1] - g->off[v];
            g->contrib[v] = deg ? g->rank[v] / (double)deg : 0.0;
        }
    }
}

int main(int argc, char **argv)
{
    const char *usage = "[-t THREADS] [-s SEED] bfs|pagerank SCALE EDGEFACTOR [ROUNDS]";
    opts_t o = parse_opts(argc, argv, usage, 3, 4);
    graph_t g = { 0 };
    int bfs = !strcmp(o.pos[0], "bfs");
    if (!bfs && strcmp(o.pos[0], "pagerank"))
        die("kernel must be bfs or pagerank, got '%s'", o.pos[0]);
    g.scale = (int)parse_u64("SCALE", o.pos[1], 1, 31);
    g.n = 1ULL << g.scale;
    g.m = g.n * parse_u64("EDGEFACTOR", o.pos[2], 1, 1024);
    g.rounds = o.npos > 3 ? (int)parse_u64("ROUNDS", o.pos[3], 1, 1000) : (bfs ? 2 : 3);
    g.seed = o.seed;
    g.threads = o.threads;
    g.edges = xmalloc(g.m * sizeof *g.edges);
    run_threads(g.threads, gen_edges, &g);
    build_csr(&g);
    pthread_barrier_init(&g.bar, NULL, g.threads);
    if (bfs) {
        g.level = xmalloc(g.n * sizeof *g.level);
        g.parent = xmalloc(g.n * sizeof *g.parent);
        rng_t r = rng_at(g.seed, UINT64_MAX);
        uint64_t visited_sum = 0, depth_sum = 0;
        for (int i = 0; i < g.rounds; i++) {
            do
                g.root = rng_next(&r) & (g.n - 1);
            while (g.off[g.root + 1] == g.off[g.root]);
            run_threads(g.threads, bfs_work, &g);
            uint64_t visited = 0, depth = 0;
            for (uint64_t v = 0; v < g.n; v++)
                if (g.level[v] >= 0) {
                    visited++;
                    depth += (uint64_t)g.level[v];
                }
            visited_sum += visited;
            depth_sum += depth;
        }
        printf("bfs scale %d edges %llu roots %d visited %llu level-sum %llu\n", g.scale,
               (unsigned long long)g.m, g.rounds, (unsigned long long)visited_sum,
               (unsigned long long)depth_sum);
    } else {
        g.rank = xmalloc(g.n * sizeof *g.rank);
        g.contrib = xmalloc(g.n * sizeof *g.contrib);
        run_threads(g.threads, pr_work, &g);
        double s = 0.0, top = 0.0;
        for (uint64_t v = 0; v < g.n; v++) {
            s += g.rank[v];
            if (g.rank[v] > top)
                top = g.rank[v];
        }
        printf("pagerank scale %d edges %llu iterations %d sum %.9f max %.9e\n", g.scale,
               (unsigned long long)g.m, g.rounds, s, top);
    }
    return 0;
}
