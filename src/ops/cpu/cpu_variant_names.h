/* cpu_variant_names.h — gives every external symbol of src/ops/cpu/ a per-variant name.
 *
 * The kernels in src/ops/cpu/ are compiled once per CPU variant from the same source (CMakeLists.txt,
 * DEALER_CPU_VARIANTS): the first variant (baseline, or native with -DDEALER_NATIVE=ON) keeps the plain names,
 * every further one is compiled with this header forced in first (-include) and DL_CPU_VARIANT_SUFFIX set, so
 * dl_cpu_attention_forward becomes dl_cpu_attention_forward_avx2, the tables dl_cpu_dense_ops_avx2 and so on.
 * src/ops/cpu_backend.c then picks one set of tables at start-up.
 *
 * The renaming is an assembler name on the declaration: `size_t dl_cpu_f(void) DL_CPU_SYMBOL(dl_cpu_f);` makes
 * the definition that follows, and every call that sees the declaration, use dl_cpu_f_avx2. The kernels get it
 * from their generated prototypes (cpu_kernels.h, one per row of ops/op_list.h) and the tables from op_tables.c,
 * so a new kernel needs nothing here. Any other external function or variable of src/ops/cpu/ needs
 * DL_CPU_SYMBOL on its declaration: without it, the link fails with a "multiple definition" error naming it.
 * Static functions need nothing. */
#ifndef DL_OPS_CPU_CPU_VARIANT_NAMES_H
#define DL_OPS_CPU_CPU_VARIANT_NAMES_H

#ifndef DL_CPU_VARIANT_SUFFIX
#error "cpu_variant_names.h is only for the suffixed CPU variant builds (CMakeLists.txt sets DL_CPU_VARIANT_SUFFIX)"
#endif

#define DL_CPU_VARIANT_STR2(x) #x
#define DL_CPU_VARIANT_STR(x) DL_CPU_VARIANT_STR2(x)

/* __USER_LABEL_PREFIX__ is what the platform puts before C names (nothing on ELF, "_" on Mach-O). */
#define DL_CPU_SYMBOL(name)                                                                                      \
    __asm__(DL_CPU_VARIANT_STR(__USER_LABEL_PREFIX__) #name DL_CPU_VARIANT_STR(DL_CPU_VARIANT_SUFFIX))

#endif
