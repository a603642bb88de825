// Small formatting helpers shared by the pages.

/** 0.934 → "93.4 %"; missing numbers (the API writes NaN as null) → "–". */
export function percent(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined || Number.isNaN(value)
    ? "–"
    : `${(value * 100).toFixed(digits)} %`;
}

/** A number with ``digits`` decimals, "–" when missing. */
export function decimal(value: number | null | undefined, digits = 3): string {
  return value === null || value === undefined || Number.isNaN(value) ? "–" : value.toFixed(digits);
}

/** A pixel-scale budget as the backend writes it: 8/255 when on the 8-bit grid. */
export function formatEps(eps: number | null | undefined): string {
  if (eps === null || eps === undefined || Number.isNaN(eps)) return "L2";
  const steps = eps * 255;
  return Math.abs(steps - Math.round(steps)) < 1e-6 ? `${Math.round(steps)}/255` : eps.toPrecision(4);
}

/** The most budgets a job takes (the API's limit). */
export const MAX_BUDGETS = 16;

/** "2, 4, 8" or "2/255 4/255 8/255" (1/255 steps) → [2/255, 4/255, 8/255]; throws an error
 * that says what is wrong. With ``allowZero``, 0 (no attack: clean accuracy) is a budget too. */
export function parseBudgets(text: string, { allowZero = false } = {}): number[] {
  const parts = text
    .replace(/\s*\/\s*/g, "/")
    .split(/[\s,;]+/)
    .map((part) => part.trim())
    .filter(Boolean);
  if (parts.length === 0)
    throw new Error(`give at least one budget, e.g. ${allowZero ? "0, 8/255" : "8"} for ε = 8/255`);
  if (parts.length > MAX_BUDGETS)
    throw new Error(`give at most ${MAX_BUDGETS} budgets (there are ${parts.length})`);
  const range = allowZero ? "[0, 255]" : "(0, 255]";
  const seen = new Map<number, string>();
  return parts.map((part) => {
    const steps = Number(part.replace(/\/255$/, ""));
    if (!Number.isFinite(steps) || steps < 0 || (steps === 0 && !allowZero) || steps > 255)
      throw new Error(
        `budget ${JSON.stringify(part)} is not a number of 1/255 steps in ${range} (write 8 or 8/255 for ε = 8/255)`,
      );
    const twin = seen.get(steps);
    if (twin !== undefined)
      throw new Error(
        `budget ${JSON.stringify(part)} is the same as ${JSON.stringify(twin)}: give each once`,
      );
    seen.set(steps, part);
    return steps / 255;
  });
}

export function shortId(id: string): string {
  return id.length > 8 ? id.slice(0, 8) : id;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** Seconds between two timestamps (to now when the second is missing), as "1 min 5 s". */
export function duration(start: string | null | undefined, end: string | null | undefined): string {
  if (!start) return "–";
  return formatSeconds(((end ? Date.parse(end) : Date.now()) - Date.parse(start)) / 1000);
}

/** A number of seconds as "4.2 s", "1 min 5 s" or "2 h 3 min"; "–" when unknown. */
export function formatSeconds(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  const seconds = Math.max(0, value);
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60
    ? `${minutes} min ${Math.round(seconds % 60)} s`
    : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** The names of a probability map, most likely first. */
export function ranked(probabilities: Record<string, number>): [string, number][] {
  return Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
}

/** Why ``value`` is not a number from ``low`` to ``high`` (a whole one unless ``whole`` is
 * false), or null when it is one. */
export function rangeProblem(
  what: string,
  value: number,
  low: number,
  high: number,
  whole = true,
): string | null {
  if (Number.isFinite(value) && value >= low && value <= high && (!whole || Number.isInteger(value)))
    return null;
  return `${what} must be a ${whole ? "whole number" : "number"} from ${low} to ${high}`;
}
