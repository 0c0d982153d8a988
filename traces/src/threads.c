/* Four threads (started together at a barrier) update private slices of a shared array and a shared atomic counter
   (lock-prefixed read-modify-writes), for a small bundled multi-threaded trace. */
#include <pthread.h>
#include <stdio.h>

#define THREADS 4
#define ELEMS (1 << 14)
#define ROUNDS 4

static long data[ELEMS];
static long counter;
static pthread_barrier_t start;

static void *worker(void *arg)
{
    long id = (long)arg, sum = 0;
    long lo = id * (ELEMS / THREADS), hi = lo + ELEMS / THREADS;
    pthread_barrier_wait(&start);   /* all workers alive at once: distinct thread ids */
    for (int r = 0; r < ROUNDS; r++) {
        for (long i = lo; i < hi; i++) {
            data[i] += i ^ r;
            sum += data[i];
        }
        __atomic_fetch_add(&counter, 1, __ATOMIC_SEQ_CST);
    }
    return (void *)sum;
}

int main(void)
{
    pthread_t t[THREADS];
    long total = 0;
    pthread_barrier_init(&start, NULL, THREADS);
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (long)r;
    }
    printf("threads: total %ld counter %ld\n", total, counter);
    return 0;
}
