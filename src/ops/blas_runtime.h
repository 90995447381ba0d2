/* blas_runtime.h — running OpenBLAS's best kernel for this CPU without the user setting anything.
 *
 * Debian's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH but does not recognise recent AMD and Intel models; it then
 * falls back to a generic kernel 4–10× slower. OpenBLAS reads OPENBLAS_CORETYPE once, when the library loads, so
 * the only reliable fix from inside the program is to set the variable and re-execute before any work starts.
 * dl_blas_select_kernel does that when the CPU has AVX-512 (SkylakeX kernel) or AVX2+FMA (Haswell kernel) but
 * OpenBLAS picked something weaker, and the user has not set OPENBLAS_CORETYPE themselves (their choice wins).
 * DEALER_BLAS_AUTOSELECT=0 turns the kernel choice off.
 *
 * The same re-execution sets OMP_WAIT_POLICY=passive when the user has set neither OMP_WAIT_POLICY nor
 * GOMP_SPINCOUNT (libgomp also reads them once, at load). libgomp's default keeps an idle thread spinning for
 * about 300,000 pause loops after every parallel region: harmless on an idle machine, but on a shared or
 * oversubscribed one (several ranks per core, other jobs) the spinners take the cores the working threads need.
 * Measured on the shared 2-core development machine: `dealer eval` of a small model with 2 threads took 1.0-4.6 s
 * with the default and 0.04-0.17 s passive (as fast as one thread); a GPT-2 124M training step 5.0 s against
 * 2.7 s. Passive costs one futex wake-up per parallel region, a few microseconds, when the machine is idle. */
#ifndef DL_OPS_BLAS_RUNTIME_H
#define DL_OPS_BLAS_RUNTIME_H

/* The kernel the CPU supports best ("SkylakeX", "Haswell") or NULL when OpenBLAS's own choice is as good. */
const char *dl_blas_wanted_coretype(void);

/* Re-executes /proc/self/exe with OPENBLAS_CORETYPE set when that gives a faster kernel, and with
 * OMP_WAIT_POLICY=passive unless the user chose a wait policy. Call first thing in main(), before MPI_Init and
 * before any thread starts. Returns only when no re-exec was needed or it failed. */
void dl_blas_select_kernel(char **argv);

/* "SkylakeX kernel (selected by dealer)" etc.: what runs and why, for logs and --version. */
const char *dl_blas_describe(void);

/* The best sgemm rate (GFLOP/s) of `repeats` n×n×n products through CBLAS with `threads` threads (0: OpenMP's
 * count), after one warm-up: the reference every MFU figure is measured against (`dealer bench gemm`). Each
 * product is timed by the wall clock or by the process's CPU time per thread, whichever is shorter, so other jobs
 * on the cores do not lower the reference.
 * Returns a negative value when the matrices cannot be allocated. */
double dl_blas_gemm_gflops(int n, int repeats, int threads);

/* The kernel name OpenBLAS reports. */
const char *dl_blas_corename(void);

#endif
