// Numbers as charts can draw them: undefined numbers (NaN) arrive from the API as null.

export const finite = (value: unknown): value is number =>
  typeof value === "number" && Number.isFinite(value);

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
