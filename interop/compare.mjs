// Checks shared by the interop clients and reports: assertions, the first difference between two JSON
// values, and the fast-path probe files (fastpath_probe.py writes one JSON line per call it answered); and
// what the two on/off comparisons share: the protocol version and the options naming the server pair.

import fs from 'node:fs';
import { isDeepStrictEqual } from 'node:util';

export const MODERN = '2026-07-28';

// parseArgs options of a client comparing two servers, the HTTP fast path on and off, and their probe files.
export const SERVER_PAIR_OPTIONS = {
  on: { type: 'string' },
  off: { type: 'string' },
  'probe-on': { type: 'string' },
  'probe-off': { type: 'string' },
};

export function assert(condition, message) {
  if (!condition) throw new Error(message);
}

// `where: A != B` at the first place `a` and `b` differ, or null; `names` tag the two sides ("(on)", "(off)").
export function firstDifference(a, b, where = '$', names = ['', '']) {
  if (isDeepStrictEqual(a, b)) return null;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const found = firstDifference(a[key], b[key], `${where}.${key}`, names);
      if (found) return found;
    }
  }
  return `${where}: ${JSON.stringify(a)?.slice(0, 300)}${names[0]} != ${JSON.stringify(b)?.slice(0, 300)}${names[1]}`;
}

export function assertEqual(actual, wanted, what) {
  const difference = firstDifference(actual, wanted);
  if (difference) throw new Error(`${what} differ at ${difference}`);
}

export function readProbe(file) {
  if (!file || !fs.existsSync(file)) return null;
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
}
