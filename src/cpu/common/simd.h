// One binary for every x86-64: hot CPU loops are compiled several times (AVX-512, AVX2+FMA, baseline)
// and the loader picks the best at run time (GCC/Clang function multiversioning through ifunc).
// Mark the innermost hot functions with SK_CPU_DISPATCH and keep them free of intrinsics: the bodies are
// written so the compiler vectorises them for each target. Elsewhere the macro expands to nothing.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) && !defined(SK_NO_MULTIVERSIONING)
#define SK_CPU_DISPATCH __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SK_CPU_DISPATCH
#endif

#if defined(__GNUC__)
#define SK_RESTRICT __restrict__
#else
#define SK_RESTRICT
#endif
