// What a guard's verdict says about the attack, in the terms the pages show it.
import type { Verdict } from "../api/client";

/** Below this total probability of the detector's attacks, a rejected image is said to match
 * none of them: the clean-image part found it unusual, the attack-naming head did not. */
export const KNOWN_ATTACK_FROM = 0.5;

export interface NamedAttack {
  /** The likeliest attack (null when the image was accepted). */
  name: string | null;
  /** Its probability. */
  probability: number | undefined;
  /** All the detector's attacks together. */
  total: number;
  /** Whether the head recognises one of its attacks at all (``total`` ≥ KNOWN_ATTACK_FROM). */
  known: boolean;
}

export function namedAttack(verdict: Verdict): NamedAttack {
  const total = Object.values(verdict.attack_probabilities).reduce((sum, p) => sum + p, 0);
  return {
    name: verdict.attack,
    probability: verdict.attack ? verdict.attack_probabilities[verdict.attack] : undefined,
    total,
    known: total >= KNOWN_ATTACK_FROM,
  };
}
