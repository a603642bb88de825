// Checks of the free-form JSON the API sends in job results and reports (typed
// ``{[key: string]: unknown}`` in the OpenAPI document), before anything is drawn from it.
// Undefined numbers (NaN) arrive as null.

export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

export const finite = (value: unknown): value is number =>
  typeof value === "number" && Number.isFinite(value);

/** A list of numbers with anything that is not a finite number as null; null if not a list. */
export function numberList(value: unknown): (number | null)[] | null {
  return Array.isArray(value) ? value.map((item) => (finite(item) ? item : null)) : null;
}

/** A list of strings (other items left out); null if not a list. */
export function stringList(value: unknown): string[] | null {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : null;
}

/** The pairs ``(xs[i], ys[i])`` where both are finite numbers, in order. */
export function finitePairs(
  xs: readonly (number | null | undefined)[],
  ys: readonly (number | null | undefined)[],
): [number, number][] {
  const pairs: [number, number][] = [];
  const count = Math.min(xs.length, ys.length);
  for (let i = 0; i < count; i++) {
    const x = xs[i];
    const y = ys[i];
    if (finite(x) && finite(y)) pairs.push([x, y]);
  }
  return pairs;
}
