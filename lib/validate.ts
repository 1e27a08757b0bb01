/**
 * Argument predicates and the one error format (sharp's `is.mjs` pattern):
 * "Expected <expected> for <name> but received <actual>". Every public function validates its
 * arguments with these before any native work.
 */

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (Array.isArray(v)) return v.length <= 8 ? `[${v.map(describe).join(', ')}]` : `an array of length ${v.length}`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as { length?: number }).length ?? v.byteLength})`;
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'object') return `an object (${(v as object).constructor?.name ?? 'Object'})`;
  return `${typeof v}`;
}

/** TypeError: wrong kind of value. */
export function invalidType(name: string, expected: string, actual: unknown): TypeError {
  return new TypeError(`Expected ${expected} for ${name} but received ${describe(actual)}`);
}

/** RangeError: right kind, wrong value. */
export function invalidValue(name: string, expected: string, actual: unknown): RangeError {
  return new RangeError(`Expected ${expected} for ${name} but received ${describe(actual)}`);
}

export const isDefined = <T>(v: T | undefined | null): v is T => v !== undefined && v !== null;
/**
 * An object literal (or Object.create(null)), from any realm: its prototype is null or a prototype whose own
 * prototype is null. A RegExp, Date, Map, array, typed array or class instance is not an options object.
 */
export const isPlainObject = (v: unknown): v is Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === null || Object.getPrototypeOf(proto) === null;
};
export const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
export const isInteger = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
export const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean';
export const isString = (v: unknown): v is string => typeof v === 'string';
export const inRange = (v: number, lo: number, hi: number): boolean => v >= lo && v <= hi;
export const inArray = <T>(v: unknown, values: readonly T[]): v is T => values.includes(v as T);

/** Integer in [lo, hi] (inclusive). Throws TypeError for non-integers, RangeError outside the range. */
export function checkInteger(name: string, v: unknown, lo = -Infinity, hi = Infinity): number {
  if (!isInteger(v)) throw invalidType(name, 'an integer', v);
  if (!inRange(v, lo, hi)) {
    const range = hi === Infinity ? `an integer >= ${lo}` : `an integer between ${lo} and ${hi}`;
    throw invalidValue(name, range, v);
  }
  return v;
}

/** Finite number in [lo, hi]. NaN and +-Infinity are rejected with a RangeError. */
export function checkNumber(name: string, v: unknown, lo = -Infinity, hi = Infinity): number {
  if (typeof v !== 'number') throw invalidType(name, 'a number', v);
  if (!Number.isFinite(v)) throw invalidValue(name, 'a finite number', v);
  if (!inRange(v, lo, hi)) {
    const range = hi === Infinity ? `a number >= ${lo}` : lo === -Infinity ? `a number <= ${hi}` : `a number between ${lo} and ${hi}`;
    throw invalidValue(name, range, v);
  }
  return v;
}

export function checkBoolean(name: string, v: unknown): boolean {
  if (!isBoolean(v)) throw invalidType(name, 'a boolean', v);
  return v;
}

export function checkOneOf<T extends string>(name: string, v: unknown, values: readonly T[]): T {
  if (!inArray(v, values)) throw invalidValue(name, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, v);
  return v as T;
}

/** Options objects: undefined becomes {}, anything else must be a plain object. Unknown keys are rejected. */
export function checkOptions<T extends object>(name: string, v: unknown, known: readonly string[]): Partial<T> {
  if (v === undefined) return {};
  if (!isPlainObject(v)) throw invalidType(name, 'an options object', v);
  for (const key of Object.keys(v)) {
    if (!known.includes(key)) {
      throw invalidValue(`${name}.${key}`, `a known option (${known.join(', ')})`, key);
    }
  }
  return v as Partial<T>;
}

/** A shape: array of non-negative safe integers. */
export function checkDims(name: string, v: unknown): number[] {
  if (!Array.isArray(v)) throw invalidType(name, 'an array of non-negative integers', v);
  v.forEach((d, i) => {
    if (!isInteger(d) || d < 0) throw invalidValue(`${name}[${i}]`, 'a non-negative integer', d);
  });
  const size = v.reduce((a: number, b: number) => a * b, 1);
  if (!Number.isSafeInteger(size)) throw invalidValue(name, 'a shape with fewer than 2^53 elements', v);
  // -0 passes as a non-negative integer; store it as 0 so that dims and sizes compare as users expect.
  return v.map((d: number) => d + 0);
}
