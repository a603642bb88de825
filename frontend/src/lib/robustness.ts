// The results of the robustness jobs, typed by the API's document (the job registry's
// result models): evaluate_robustness's ``result.robustness`` and ``result.adaptive``,
// adversarial_training's ``result.comparison``. Undefined numbers (NaN) arrive as null.
import type { components } from "../api/schema";
import { formatBudget, type Norm } from "./format";

type Schemas = components["schemas"];

/** The attacks an evaluate_robustness job runs when none are named
 * (``advguard.evaluation.robustness.ROBUSTNESS_ATTACKS``). */
export const ROBUSTNESS_ATTACKS = ["fgsm", "bim", "pgd", "mim", "apgd", "cw", "deepfool"];
/** The attacks of a handover report (``advguard.jobs.steps.REPORT_ATTACKS``). */
export const REPORT_ATTACKS = ["fgsm", "pgd", "apgd", "cw", "deepfool", "autoattack", "autoattack-l2"];
/** Its default budgets (``ROBUSTNESS_EPSILONS``), as the form writes them. */
export const ROBUSTNESS_BUDGETS = "0, 1/255, 2/255, 4/255, 8/255, 16/255";
/** Its default L2 radii (``ROBUSTNESS_L2_EPSILONS``). */
export const ROBUSTNESS_L2_BUDGETS = "0, 0.25, 0.5, 1";
/** The grids of a result, L∞ first. */
export const NORMS: Norm[] = ["linf", "l2"];
/** How a grid is named in headings. */
export const NORM_LABEL: Record<Norm, string> = { linf: "L∞", l2: "L2" };
/** The label of the undefended model. */
export const NO_DEFENSE = "none";
const BPDA_SUFFIX = " + BPDA";

/** Accuracy of one defense setting under one attack, one value per ε. */
export type RobustnessCurve = Schemas["RobustnessCurve"];
/** Accuracy under each attack over ε, per defense setting ("none", "jpeg", "jpeg + BPDA", …). */
export type RobustnessReport = Schemas["RobustnessResult"];
/** One setting of the adaptive test: the share of attacked images that were rejected by
 * the detector or still classified correctly, by an attack that knows the detector (and,
 * where measured, by one that does not). */
export type AdaptiveSetting = Schemas["AdaptiveSetting"];
export type AdaptiveReport = Schemas["AdaptiveSummary"];
/** The start model and the adversarially trained one under PGD, per ε. */
export type ModelComparison = Schemas["ModelComparison"];

/** One attack's curve under one defense setting, on the L∞ grid unless told. */
export function curveOf(
  report: RobustnessReport,
  defense: string,
  attack: string,
  norm: Norm = "linf",
): RobustnessCurve | undefined {
  return report.curves.find(
    (curve) => curve.defense === defense && curve.attack === attack && (curve.norm ?? "linf") === norm,
  );
}

/** The attacks measured on a grid, in the order they were named. */
export function attacksOn(report: RobustnessReport, norm: Norm): string[] {
  return report.attacks.filter((attack) => curveOf(report, report.defenses[0] ?? NO_DEFENSE, attack, norm));
}

/** A grid's budgets and per-defense worst case. */
export function gridOf(
  report: RobustnessReport,
  norm: Norm,
): { epsilons: number[]; worstCase: Record<string, (number | null)[]> } {
  return norm === "linf"
    ? { epsilons: report.epsilons, worstCase: report.worst_case }
    : { epsilons: report.l2_epsilons ?? [], worstCase: report.worst_case_l2 ?? {} };
}

/** Whether a defense setting is attacked with BPDA ("jpeg + BPDA"). */
export function isBpda(label: string): boolean {
  return label.endsWith(BPDA_SUFFIX);
}

/** The preprocessing of a setting: "jpeg" for both "jpeg" and "jpeg + BPDA". */
export function baseDefense(label: string): string {
  return isBpda(label) ? label.slice(0, -BPDA_SUFFIX.length) : label;
}

/** A budget as a column or tick label: "0" for none, else "8/255" (L∞) or "0.5" (L2). */
export function budgetLabel(eps: number, norm: Norm = "linf"): string {
  return eps === 0 ? "0" : formatBudget(eps, norm);
}
