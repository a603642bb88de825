// Helpers over the attacks the API lists (GET /api/v1/attacks, `useAttacks()`): an L∞
// attack takes a budget ε; an L2 attack (Carlini–Wagner) runs at its own defaults.
import type { AttackInfo } from "../api/client";

/** Whether the attack is measured in L∞ and so takes a budget ε. */
export function takesBudget(attack: Pick<AttackInfo, "norm"> | undefined): boolean {
  return attack?.norm === "linf";
}

/** "L∞", "L2", or the API's own word for a norm it may add later. */
export function normLabel(norm: string): string {
  if (norm === "linf") return "L∞";
  if (norm === "l2") return "L2";
  return norm;
}

/** The default budget of an L∞ attack in 1/255 steps (its ``eps`` default), else ``fallback``. */
export function defaultBudget(attack: AttackInfo | undefined, fallback = 8): number {
  const eps = attack?.defaults.eps;
  return typeof eps === "number" && eps > 0 ? Math.round(eps * 255 * 2) / 2 : fallback;
}

/** The names among ``preferred`` that the API lists, else its first attack. */
export function defaultAttacks(attacks: AttackInfo[], preferred: string[]): string[] {
  const known = preferred.filter((name) => attacks.some((attack) => attack.name === name));
  if (known.length > 0) return known;
  return attacks.length > 0 ? [attacks[0]!.name] : [];
}

/** A summary's ``code`` spans (reStructuredText literals) as [text, isCode] parts. */
export function summaryParts(summary: string): [string, boolean][] {
  return summary
    .split("``")
    .map((part, i): [string, boolean] => [part, i % 2 === 1])
    .filter(([part]) => part !== "");
}
