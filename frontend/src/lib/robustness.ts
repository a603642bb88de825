// The results of the robustness jobs, checked before they are drawn (the API types a job's
// result as a free-form object):
// - evaluate_robustness: ``result.robustness`` (RobustnessResult.to_dict in
//   backend/advguard/evaluation/robustness.py) and, with a detector, ``result.adaptive``;
// - adversarial_training: ``result.comparison`` (ModelComparison.to_dict).
import { formatEps } from "./format";
import { finite, isObject, numberList, stringList } from "./shape";

/** The attacks an evaluate_robustness job runs when none are named
 * (``advguard.evaluation.robustness.ROBUSTNESS_ATTACKS``). */
export const ROBUSTNESS_ATTACKS = ["fgsm", "bim", "pgd", "mim", "apgd", "cw", "deepfool"];
/** Its default budgets (``ROBUSTNESS_EPSILONS``), as the form writes them. */
export const ROBUSTNESS_BUDGETS = "0, 1/255, 2/255, 4/255, 8/255, 16/255";
/** The label of the undefended model. */
export const NO_DEFENSE = "none";
const BPDA_SUFFIX = " + BPDA";

/** Accuracy of one defense setting under one attack, one value per ε. */
export interface RobustnessCurve {
  defense: string;
  attack: string;
  accuracy: (number | null)[];
  seconds: number | null;
}

export interface RobustnessReport {
  epsilons: number[];
  images: number;
  attacks: string[];
  /** Labels: "none", "jpeg", "jpeg + BPDA", … */
  defenses: string[];
  clean_accuracy: Record<string, number | null>;
  curves: RobustnessCurve[];
  /** Per defense setting and ε: the share of images correct under every attack. */
  worst_case: Record<string, (number | null)[]>;
  seconds: number | null;
}

/** One setting of the adaptive test: the share of attacked images that were rejected by
 * the detector or still classified correctly, by an attack that knows the detector (and,
 * where measured, by one that does not). */
export interface AdaptiveSetting {
  name: string;
  protected_accuracy: (number | null)[];
  non_adaptive: (number | null)[] | null;
}

export interface AdaptiveReport {
  epsilons: number[];
  images: number | null;
  settings: AdaptiveSetting[];
}

export interface ComparedModel {
  name: string;
  clean_accuracy: number | null;
  accuracy: (number | null)[];
}

/** The start model and the adversarially trained one under PGD, per ε. */
export interface ModelComparison {
  epsilons: number[];
  models: ComparedModel[];
  attacks: string[];
  images: number | null;
}

const numberMap = (value: unknown): Record<string, number | null> =>
  isObject(value)
    ? Object.fromEntries(Object.entries(value).map(([key, item]) => [key, finite(item) ? item : null]))
    : {};

/** The budgets of a result: a list of finite numbers, else null. */
function epsilonsOf(value: unknown): number[] | null {
  const list = numberList(value);
  return list && list.every(finite) ? (list as number[]) : null;
}

/** ``result.robustness`` if it has the fields the charts need, else null. */
export function asRobustness(value: unknown): RobustnessReport | null {
  if (!isObject(value)) return null;
  const epsilons = epsilonsOf(value.epsilons);
  const attacks = stringList(value.attacks);
  const defenses = stringList(value.defenses);
  if (!epsilons || !attacks || !defenses || !Array.isArray(value.curves)) return null;
  const curves = value.curves.filter(isObject).map((curve): RobustnessCurve => ({
    defense: String(curve.defense),
    attack: String(curve.attack),
    accuracy: numberList(curve.accuracy) ?? [],
    seconds: finite(curve.seconds) ? curve.seconds : null,
  }));
  const worst = isObject(value.worst_case) ? value.worst_case : {};
  return {
    epsilons,
    images: finite(value.images) ? value.images : 0,
    attacks,
    defenses,
    clean_accuracy: numberMap(value.clean_accuracy),
    curves,
    worst_case: Object.fromEntries(defenses.map((label) => [label, numberList(worst[label]) ?? []])),
    seconds: finite(value.seconds) ? value.seconds : null,
  };
}

/** ``result.adaptive`` if present and well formed, else null. */
export function asAdaptive(value: unknown): AdaptiveReport | null {
  if (!isObject(value) || !Array.isArray(value.settings)) return null;
  const epsilons = epsilonsOf(value.epsilons);
  if (!epsilons) return null;
  return {
    epsilons,
    images: finite(value.images) ? value.images : null,
    settings: value.settings.filter(isObject).map((setting) => ({
      name: String(setting.name),
      protected_accuracy: numberList(setting.protected_accuracy) ?? [],
      non_adaptive: numberList(setting.non_adaptive),
    })),
  };
}

/** ``result.comparison`` of an adversarial_training job if well formed, else null. */
export function asComparison(value: unknown): ModelComparison | null {
  if (!isObject(value) || !Array.isArray(value.models)) return null;
  const epsilons = epsilonsOf(value.epsilons);
  if (!epsilons) return null;
  return {
    epsilons,
    attacks: stringList(value.attacks) ?? [],
    images: finite(value.images) ? value.images : null,
    models: value.models.filter(isObject).map((model) => ({
      name: String(model.name),
      clean_accuracy: finite(model.clean_accuracy) ? model.clean_accuracy : null,
      accuracy: numberList(model.accuracy) ?? [],
    })),
  };
}

/** One attack's curve under one defense setting. */
export function curveOf(
  report: RobustnessReport,
  defense: string,
  attack: string,
): RobustnessCurve | undefined {
  return report.curves.find((curve) => curve.defense === defense && curve.attack === attack);
}

/** Whether a defense setting is attacked with BPDA ("jpeg + BPDA"). */
export function isBpda(label: string): boolean {
  return label.endsWith(BPDA_SUFFIX);
}

/** The preprocessing of a setting: "jpeg" for both "jpeg" and "jpeg + BPDA". */
export function baseDefense(label: string): string {
  return isBpda(label) ? label.slice(0, -BPDA_SUFFIX.length) : label;
}

/** A budget as a column or tick label: "0" for none, else "8/255". */
export function budgetLabel(eps: number): string {
  return eps === 0 ? "0" : formatEps(eps);
}
