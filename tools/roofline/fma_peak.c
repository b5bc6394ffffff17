/* The FP32 peak of this CPU, measured: each thread runs independent chains
 * of fused multiply-adds long enough to hide their latency, and the best of
 * several timed rounds is kept. The vector width is the widest this CPU
 * has: 16 lanes (AVX-512F) where the CPU reports it, else 8 (AVX2 + FMA).
 * ONNX Runtime's MLAS picks its kernels the same way, so an AVX2-only peak
 * on an AVX-512 machine would put the tower above 100% of "peak".
 *
 *   cc -O2 -mavx2 -mfma -pthread fma_peak.c -o fma_peak && ./fma_peak THREADS [avx2|avx512]
 *
 * Prints one JSON line: threads, isa, GFLOP/s (2 FLOP per lane per FMA). */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <string.h>

#define ITERS 40000000L /* per thread, each 12 FMAs of 8 lanes: 7.7 GFLOP (AVX2) */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Twelve named accumulators, so the compiler keeps every chain in a register. */
static void *spin(void *out) {
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 c0 = _mm256_set1_ps(0), c1 = _mm256_set1_ps(1), c2 = _mm256_set1_ps(2), c3 = _mm256_set1_ps(3);
    __m256 c4 = _mm256_set1_ps(4), c5 = _mm256_set1_ps(5), c6 = _mm256_set1_ps(6), c7 = _mm256_set1_ps(7);
    __m256 c8 = _mm256_set1_ps(8), c9 = _mm256_set1_ps(9), c10 = _mm256_set1_ps(10), c11 = _mm256_set1_ps(11);
    for (long n = 0; n < ITERS; n++) {
        c0 = _mm256_fmadd_ps(c0, a, b); c1 = _mm256_fmadd_ps(c1, a, b); c2 = _mm256_fmadd_ps(c2, a, b);
        c3 = _mm256_fmadd_ps(c3, a, b); c4 = _mm256_fmadd_ps(c4, a, b); c5 = _mm256_fmadd_ps(c5, a, b);
        c6 = _mm256_fmadd_ps(c6, a, b); c7 = _mm256_fmadd_ps(c7, a, b); c8 = _mm256_fmadd_ps(c8, a, b);
        c9 = _mm256_fmadd_ps(c9, a, b); c10 = _mm256_fmadd_ps(c10, a, b); c11 = _mm256_fmadd_ps(c11, a, b);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    *(float *)out = lanes[0] + lanes[7]; /* keeps the work alive */
    return NULL;
}

/* The same with 16-lane registers; 32 of them exist, 16 chains cover the
 * FMA latency on two ports. Compiled for AVX-512F only in this function. */
__attribute__((target("avx512f"))) static void *spin512(void *out) {
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    __m512 c[16];
    for (int i = 0; i < 16; i++) c[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < ITERS / 2; n++) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) c[i] = _mm512_fmadd_ps(c[i], a, b);
    }
    __m512 s = c[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, c[i]);
    float lanes[16];
    _mm512_storeu_ps(lanes, s);
    *(float *)out = lanes[0] + lanes[15];
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1 || threads > 256) threads = 1;
    __builtin_cpu_init();
    int wide = __builtin_cpu_supports("avx512f");
    if (argc > 2) wide = strcmp(argv[2], "avx512") == 0 && wide;
    void *(*kernel)(void *) = wide ? spin512 : spin;
    /* FLOP per thread: AVX2 12 chains x 8 lanes x ITERS; AVX-512 16 x 16 x ITERS/2. */
    double per_thread = wide ? 2.0 * 16 * 16 * (double)(ITERS / 2) : 2.0 * 8 * 12 * (double)ITERS;
    pthread_t ids[256];
    float sink[256];
    double best = 0;
    for (int round = 0; round < 3; round++) {
        double t = now();
        for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, kernel, &sink[i]);
        for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
        double flops = per_thread * threads;
        double g = flops / (now() - t) / 1e9;
        if (g > best) best = g;
    }
    printf("{\"threads\": %d, \"isa\": \"%s\", \"gflops\": %.1f, \"sink\": %g}\n", threads,
           wide ? "avx512" : "avx2", best, (double)sink[0]);
    return 0;
}
