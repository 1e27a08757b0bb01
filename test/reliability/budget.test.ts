/**
 * The case budget itself: the per-file minimums add up to the suite's 100,000 generated cases, and every area
 * has its test file (each file asserts its own minimum in an afterAll, see helpers/fc.ts expectCaseBudget).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { CASE_MINIMUMS, SUITE_MINIMUM_CASES } from './helpers/budget';

test('the per-file case minimums add up to at least 100,000 generated cases per run', () => {
  const total = Object.values(CASE_MINIMUMS).reduce((a, b) => a + b, 0);
  expect(total).toBeGreaterThanOrEqual(SUITE_MINIMUM_CASES);
  expect(SUITE_MINIMUM_CASES).toBe(100_000);
});

test('every area of the budget has a test file that checks its minimum', () => {
  const files = fs.readdirSync(__dirname);
  for (const area of Object.keys(CASE_MINIMUMS)) {
    const file = area === 'native' ? 'native-boundary.test.ts' : `${area}.property.test.ts`;
    expect(files).toContain(file);
    expect(fs.readFileSync(path.join(__dirname, file), 'utf8')).toMatch(new RegExp(`expectCaseBudget\\((AREA|'${area}')\\)`));
  }
});
