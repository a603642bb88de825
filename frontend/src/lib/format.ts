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

/** How every budget field is written (the API takes the same). */
export const BUDGET_SYNTAX = "8/255, 0.031 or 8 (= 8/255)";

/** The norm a budget is measured in: L∞ (a pixel's largest change) or L2 (the whole
 * perturbation's length), both in pixel scale [0, 1]. */
export type Norm = "linf" | "l2";
/** How the L2 radii field is written: plain numbers (never /255). */
export const L2_BUDGET_SYNTAX = "0.5 or 1 (pixel scale)";
/** The API's largest L2 radius (``MAX_L2_EPS``). */
export const MAX_L2_BUDGET = 100;

/** A budget as the tables write it: "8/255" for L∞, "0.5" for an L2 radius. */
export function formatBudget(eps: number, norm: Norm = "linf"): string {
  return norm === "linf" ? formatEps(eps) : String(Number(eps.toPrecision(4)));
}

/** One budget in the syntax every budget field takes, as the API does. L∞: "8/255",
 * "0.031", or a bare "8" meaning 8/255 (a number of at least 1 counts 1/255 steps; a
 * fraction is taken as written). L2: a radius as written ("0.5", "1"). Throws an error that
 * says what is wrong. */
export function parseBudget(
  text: string,
  { allowZero = false, max, norm = "linf" }: { allowZero?: boolean; max?: number; norm?: Norm } = {},
): number {
  const limit = max ?? (norm === "linf" ? 1 : MAX_L2_BUDGET);
  const written = text.replace(/\s+/g, "");
  const fraction = /^(\d*\.?\d+)\/(\d*\.?\d+)$/.exec(written);
  const number = Number(written);
  const perStep = norm === "linf" && number >= 1;
  const value = fraction ? Number(fraction[1]) / Number(fraction[2]) : perStep ? number / 255 : number;
  const syntax = norm === "linf" ? BUDGET_SYNTAX : L2_BUDGET_SYNTAX;
  if (written === "" || !Number.isFinite(value))
    throw new Error(`budget ${JSON.stringify(text)} is not a number: write ${syntax}`);
  if (value < 0 || (value === 0 && !allowZero))
    throw new Error(`budget ${JSON.stringify(text)} must be ${allowZero ? "0 or more" : "more than 0"}`);
  if (value > limit)
    throw new Error(`budget ${JSON.stringify(text)} is over the limit of ${formatBudget(limit, norm)}`);
  return value;
}

/** A comma-separated list of budgets (see ``parseBudget``), each given once. */
export function parseBudgets(
  text: string,
  { allowZero = false, norm = "linf" }: { allowZero?: boolean; norm?: Norm } = {},
): number[] {
  const parts = text
    .replace(/\s*\/\s*/g, "/")
    .split(/[\s,;]+/)
    .map((part) => part.trim())
    .filter(Boolean);
  if (parts.length === 0)
    throw new Error(`give at least one budget, e.g. ${allowZero ? "0, 8/255" : "8/255"}`);
  if (parts.length > MAX_BUDGETS)
    throw new Error(`give at most ${MAX_BUDGETS} budgets (there are ${parts.length})`);
  const seen = new Map<string, string>();
  return parts.map((part) => {
    const value = parseBudget(part, { allowZero, norm });
    const twin = seen.get(formatBudget(value, norm));
    if (twin !== undefined)
      throw new Error(
        `budget ${JSON.stringify(part)} is the same as ${JSON.stringify(twin)}: give each once`,
      );
    seen.set(formatBudget(value, norm), part);
    return value;
  });
}

/** The budgets as understood, to show under the field ("ε = 2/255, 4/255"), or "" while
 * the text is not a valid list. */
export function budgetEcho(
  text: string,
  { allowZero = false, norm = "linf" }: { allowZero?: boolean; norm?: Norm } = {},
): string {
  try {
    return `ε = ${parseBudgets(text, { allowZero, norm })
      .map((eps) => (eps === 0 ? "0" : formatBudget(eps, norm)))
      .join(", ")}`;
  } catch {
    return "";
  }
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

/** A configured window in whole seconds, in the largest whole unit that fits ("30 min"). */
export function formatWindow(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
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
