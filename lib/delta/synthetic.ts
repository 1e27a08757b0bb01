/**
 * A synthetic "video-like" feature stream for DeltaLinear demos, benchmarks and tests: per stream, unit-
 * scale features that drift slowly around a scene's base vector (most channels barely move, a few move
 * fast: per-channel speeds are log-normal), plus a little sensor noise, and occasional scene cuts that
 * replace the base vector (everything changes at once, as at a shot boundary). Deterministic for a seed.
 *
 * With the defaults and theta = 0.1 about 5-15% of the inputs fire per step between cuts, the regime
 * the delta literature reports for video features after an activation (DeltaCNN, DAL: specs/delta.md).
 */
import { checkInteger, checkNumber, checkOptions } from '../validate.js';

export interface SyntheticFeatureStreamOptions {
  /** K: features per stream. Required, an integer >= 0. */
  features: number;
  /** S: independent streams (rows of each frame). Defaults to 1. */
  streams?: number;
  /** Seed of the generator (an integer). Defaults to 1. */
  seed?: number;
  /** Per-step standard deviation of a typical channel's drift (a random walk). Defaults to 0.02. */
  drift?: number;
  /** Spread (log-normal sigma) of the per-channel drift speeds (mean speed 1). Defaults to 1. */
  motionSpread?: number;
  /** Per-step pull of each feature back toward the scene's base value (0: a pure random walk). Defaults to 0.01. */
  reversion?: number;
  /** Standard deviation of i.i.d. sensor noise added to every output value. Defaults to 0.002. */
  noise?: number;
  /** Probability per stream and step of a scene cut (a new base vector). Defaults to 0.005. */
  cutProbability?: number;
  /** Standard deviation of the scene base values. Defaults to 1. */
  sceneScale?: number;
}

export const SYNTHETIC_FEATURE_STREAM_DEFAULTS = Object.freeze({
  streams: 1,
  seed: 1,
  drift: 0.02,
  motionSpread: 1,
  reversion: 0.01,
  noise: 0.002,
  cutProbability: 0.005,
  sceneScale: 1,
});

const KEYS = ['features', 'streams', 'seed', 'drift', 'motionSpread', 'reversion', 'noise', 'cutProbability', 'sceneScale'] as const;

export class SyntheticFeatureStream {
  readonly features: number;
  readonly streams: number;
  /** Frames produced so far. */
  step = 0;
  /** Scene cuts so far, over all streams (the first frame of each stream is not counted). */
  cuts = 0;
  /** Per stream: 1 where the last frame started a new scene. */
  readonly lastCuts: Uint8Array;
  private readonly o: Required<Omit<SyntheticFeatureStreamOptions, 'features' | 'streams' | 'seed'>>;
  private readonly speed: Float32Array;
  private readonly base: Float32Array;
  private readonly value: Float32Array;
  private s: number;
  private spare: number | undefined;

  constructor(options: SyntheticFeatureStreamOptions) {
    const o = checkOptions<SyntheticFeatureStreamOptions>('options', options, KEYS);
    const d = SYNTHETIC_FEATURE_STREAM_DEFAULTS;
    this.features = checkInteger('options.features', o.features, 0, 2 ** 31 - 1);
    this.streams = o.streams === undefined ? d.streams : checkInteger('options.streams', o.streams, 0, 2 ** 31 - 1);
    const seed = o.seed === undefined ? d.seed : checkInteger('options.seed', o.seed);
    this.o = {
      drift: o.drift === undefined ? d.drift : checkNumber('options.drift', o.drift, 0),
      motionSpread: o.motionSpread === undefined ? d.motionSpread : checkNumber('options.motionSpread', o.motionSpread, 0, 10),
      reversion: o.reversion === undefined ? d.reversion : checkNumber('options.reversion', o.reversion, 0, 1),
      noise: o.noise === undefined ? d.noise : checkNumber('options.noise', o.noise, 0),
      cutProbability: o.cutProbability === undefined ? d.cutProbability : checkNumber('options.cutProbability', o.cutProbability, 0, 1),
      sceneScale: o.sceneScale === undefined ? d.sceneScale : checkNumber('options.sceneScale', o.sceneScale, 0),
    };
    this.s = (seed >>> 0) ^ 0x9e3779b9;
    const K = this.features;
    const S = this.streams;
    this.speed = new Float32Array(K);
    // Log-normal with mean 1: exp(sigma z - sigma^2 / 2).
    const sg = this.o.motionSpread;
    for (let k = 0; k < K; k++) this.speed[k] = Math.exp(sg * this.normal() - (sg * sg) / 2);
    this.base = new Float32Array(S * K);
    this.value = new Float32Array(S * K);
    this.lastCuts = new Uint8Array(S);
    for (let s = 0; s < S; s++) this.newScene(s);
  }

  /** The next frame, float32 [streams, features] row-major (a new array). */
  next(): Float32Array {
    const K = this.features;
    const { drift, reversion, noise, cutProbability } = this.o;
    const out = new Float32Array(this.streams * K);
    for (let s = 0; s < this.streams; s++) {
      const cut = this.step > 0 && this.uniform() < cutProbability;
      this.lastCuts[s] = cut ? 1 : 0;
      if (cut) {
        this.cuts++;
        this.newScene(s);
      }
      for (let k = 0; k < K; k++) {
        const i = s * K + k;
        let v = this.value[i]!;
        if (!cut) v += drift * this.speed[k]! * this.normal() + reversion * (this.base[i]! - v);
        this.value[i] = v;
        out[i] = noise > 0 ? v + noise * this.normal() : v;
      }
    }
    this.step++;
    return out;
  }

  private newScene(s: number): void {
    const K = this.features;
    for (let k = 0; k < K; k++) {
      const b = this.o.sceneScale * this.normal();
      this.base[s * K + k] = b;
      this.value[s * K + k] = b;
    }
  }

  /** mulberry32, uniform in [0, 1). */
  private uniform(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Standard normal (Box-Muller, both values used). */
  private normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    const u = Math.max(this.uniform(), 1e-300);
    const r = Math.sqrt(-2 * Math.log(u));
    const a = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(a);
    return r * Math.cos(a);
  }
}
