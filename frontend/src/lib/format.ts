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

/** "2, 4, 8" (in 1/255 steps) → [2/255, 4/255, 8/255]; throws a readable error. */
export function parseBudgets(text: string): number[] {
  const parts = text
    .split(/[\s,;]+/)
    .map((part) => part.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new Error("give at least one budget, e.g. 8 for ε = 8/255");
  return parts.map((part) => {
    const steps = Number(part.replace(/\/255$/, ""));
    if (!Number.isFinite(steps) || steps <= 0 || steps > 255)
      throw new Error(`budget ${JSON.stringify(part)} is not a number of 1/255 steps in (0, 255]`);
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
  const seconds = Math.max(0, ((end ? Date.parse(end) : Date.now()) - Date.parse(start)) / 1000);
  if (!Number.isFinite(seconds)) return "–";
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
