/**
 * Seeded random inputs. Every run draws fresh inputs (seed from the clock) unless SPARSE_KERNELS_TEST_SEED
 * is set; failing checks print the seed so a failure can be replayed. Never zeros: normal draws.
 */
export const BASE_SEED: number = process.env.SPARSE_KERNELS_TEST_SEED
  ? Number(process.env.SPARSE_KERNELS_TEST_SEED)
  : (Date.now() ^ (process.pid << 8)) >>> 0;

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  /** Uniform in [0, 1). mulberry32. */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  normals(n: number, scale = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * scale;
    return out;
  }
  uniforms(n: number, lo = -1, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.next();
    return out;
  }
}

let counter = 0;
/** A fresh generator per call, derived from the run's base seed. */
export function rng(label = ''): { rng: Rng; seed: number } {
  let h = BASE_SEED ^ (++counter * 0x9e3779b1);
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  const seed = h >>> 0;
  return { rng: new Rng(seed), seed };
}
