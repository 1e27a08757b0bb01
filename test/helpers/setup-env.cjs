// The CPU fallback notice is tested explicitly (test/runtime/backend.test.ts); keep it out of other output.
if (process.env.SPARSE_KERNELS_LOG === undefined) process.env.SPARSE_KERNELS_LOG = 'silent';
