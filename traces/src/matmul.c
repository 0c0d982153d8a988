/* Naive and cache-blocked double-precision matrix multiply, N x N, for a small bundled trace.
   Deterministic: fixed sizes, inputs from a fixed linear congruential sequence. */
#include <stdio.h>
#include <stdlib.h>

#define N 48
#define B 16

static double a[N][N], b[N][N], c1[N][N], c2[N][N];

int main(void)
{
    unsigned x = 12345;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            x = x * 1103515245u + 12345u;
            a[i][j] = (double)(x >> 16) / 65536.0;
            x = x * 1103515245u + 12345u;
            b[i][j] = (double)(x >> 16) / 65536.0;
        }
    /* naive i-j-k: walks b column-wise */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < N; k++)
                s += a[i][k] * b[k][j];
            c1[i][j] = s;
        }
    /* blocked i-k-j: unit stride in the inner loop */
    for (int ii = 0; ii < N; ii += B)
        for (int kk = 0; kk < N; kk += B)
            for (int jj = 0; jj < N; jj += B)
                for (int i = ii; i < ii + B; i++)
                    for (int k = kk; k < kk + B; k++) {
                        double r = a[i][k];
                        for (int j = jj; j < jj + B; j++)
                            c2[i][j] += r * b[k][j];
                    }
    double d = 0.0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            d += c1[i][j] - c2[i][j];
    printf("matmul %d: checksum %.6f difference %.3g\n", N, c1[N / 2][N / 3], d);
    return 0;
}
