/** Changed by the benchmark's "source change" builds. */
export const VERSION = 'v1';
