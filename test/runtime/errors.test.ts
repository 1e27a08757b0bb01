import {
  CancelledError,
  CudaError,
  DisposedError,
  OutOfMemoryError,
  ShapeError,
  SparseKernelsError,
  fromNative,
} from '../../lib/errors';
import { checkDims, checkInteger, checkNumber, checkOneOf, checkOptions } from '../../lib/validate';

describe('errors', () => {
  test('native errors map to typed subclasses with stable codes', () => {
    const cases: Array<[Record<string, unknown>, Function, string]> = [
      [{ code: 'ERR_OUT_OF_MEMORY', message: 'oom' }, OutOfMemoryError, 'ERR_OUT_OF_MEMORY'],
      [{ code: 'ERR_CUDA', message: 'bad', cudaError: 'cudaErrorIllegalAddress', cudaErrorCode: 700, op: 'attention' }, CudaError, 'ERR_CUDA'],
      [{ code: 'ERR_DISPOSED', message: 'gone' }, DisposedError, 'ERR_DISPOSED'],
      [{ code: 'ERR_CANCELLED', message: 'stop' }, CancelledError, 'ERR_CANCELLED'],
    ];
    for (const [raw, cls, code] of cases) {
      const e = fromNative(Object.assign(new Error(String(raw.message)), raw));
      expect(e).toBeInstanceOf(cls);
      expect(e).toBeInstanceOf(SparseKernelsError);
      expect((e as SparseKernelsError).code).toBe(code);
    }
    const cuda = fromNative(Object.assign(new Error('x'), { code: 'ERR_CUDA', cudaError: 'cudaErrorIllegalAddress', cudaErrorCode: 700, op: 'spmm' })) as CudaError;
    expect(cuda.cudaError).toBe('cudaErrorIllegalAddress');
    expect(cuda.cudaErrorCode).toBe(700);
    expect(cuda.op).toBe('spmm');
    expect(cuda.message).toMatch(/cudaErrorIllegalAddress/);
  });

  test('the call site replaces the native stack', () => {
    function userCode() {
      return new Error('call site');
    }
    const site = userCode();
    const e = fromNative(Object.assign(new Error('x'), { code: 'ERR_OUT_OF_MEMORY' }), site);
    expect(e.stack).toMatch(/userCode/);
  });

  test('ShapeError is a RangeError with code ERR_SHAPE', () => {
    const e = new ShapeError('bad');
    expect(e).toBeInstanceOf(RangeError);
    expect(e.code).toBe('ERR_SHAPE');
  });
});

describe('validation helpers', () => {
  test('messages follow "Expected X for name but received Y"', () => {
    expect(() => checkInteger('blockSize', 1.5)).toThrow('Expected an integer for blockSize but received 1.5');
    expect(() => checkInteger('n', 5, 0, 3)).toThrow(RangeError);
    expect(() => checkNumber('threshold', NaN)).toThrow('Expected a finite number for threshold but received NaN');
    expect(() => checkNumber('threshold', Infinity)).toThrow(RangeError);
    expect(() => checkNumber('threshold', 'x')).toThrow(TypeError);
    expect(() => checkNumber('t', 2, 0, 1)).toThrow('Expected a number between 0 and 1 for t but received 2');
    expect(() => checkOneOf('pool', 'avg', ['mean', 'max'])).toThrow(/one of "mean", "max"/);
    expect(() => checkOptions('opts', { a: 1, b: 2 }, ['a'])).toThrow(/opts\.b/);
    expect(() => checkOptions('opts', 5, ['a'])).toThrow(TypeError);
    expect(() => checkDims('dims', [2, -1])).toThrow('Expected a non-negative integer for dims[1] but received -1');
    expect(checkDims('dims', [2, 3])).toEqual([2, 3]);
  });
});
