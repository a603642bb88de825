// The detector report (DetectionReport.to_dict in backend/advguard/evaluation/
// detection_report.py). The API types it as a free-form object (`DetectorDetailOut.report`,
// and an evaluate job's `result.report`), so its shape is checked here before it is drawn.
// Undefined numbers (NaN) arrive as null.
import { finite, finitePairs, isObject } from "./shape";

export interface ReportRow {
  attack: string;
  eps: string;
  images: number;
  successful: number;
  auroc: number | null;
  auroc_successful: number | null;
  auroc_failed: number | null;
  tpr: number | null;
  tpr_successful: number | null;
  tpr_failed: number | null;
  named_successful: number | null;
  baselines: Record<string, number | null>;
}

/** An attack the detector never trained on, run on clean test images at report time. */
export type UnseenRow = Pick<
  ReportRow,
  "attack" | "eps" | "images" | "successful" | "auroc" | "auroc_successful" | "tpr" | "tpr_successful"
> & { seconds: number };

/** A trained attack as if it were new: a detector retrained without it, judged on it. */
export interface LeaveOneOutRow {
  attack: string;
  auroc: number | null;
  auroc_successful: number | null;
  /** Successful attacks rejected at the retrained detector's own threshold. */
  tpr_successful: number | null;
  clean_false_rejection: number | null;
}

/** Scores that the report draws ROC curves of: the detector and the baselines. */
export type RocScorer = "detector" | "feature squeezing" | "mahalanobis";

/** One ROC curve (at most 100 points, from (0, 0) to (1, 1)) and the exact area under it. */
export interface RocCurve {
  fpr: number[];
  tpr: number[];
  auroc: number | null;
}

/** ROC curves per scorer, then per attack (clean test images are the negatives). */
export type RocCurves = Partial<Record<RocScorer | (string & {}), Record<string, RocCurve>>>;

export interface DetectionReport {
  threshold: number;
  clean_images: number;
  clean_false_rejection: number | null;
  noise_false_rejection: Record<string, number | null>;
  rows: ReportRow[];
  per_attack_auroc: Record<string, number | null>;
  /** Empty when the evaluation skipped it. */
  leave_one_out: LeaveOneOutRow[];
  attack_names: string[];
  attack_confusion: number[][];
  naming_accuracy: number | null;
  family_accuracy: number | null;
  guard_accuracy_clean: number | null;
  seconds: number;
  /** Empty in reports written before the report ran unseen attacks. */
  unseen: UnseenRow[];
  /** Empty in reports written before the API sent ROC points. */
  roc_curves: RocCurves;
}

/** A curve's points as [fpr, tpr] pairs, keeping only pairs of finite numbers. */
export function rocPoints(curve: RocCurve): [number, number][] {
  return finitePairs(curve.fpr, curve.tpr);
}

/** The ROC curves that have the expected shape; anything else is left out. */
export function asRocCurves(value: unknown): RocCurves {
  const curves: RocCurves = {};
  if (!isObject(value)) return curves;
  for (const [scorer, perAttack] of Object.entries(value)) {
    if (!isObject(perAttack)) continue;
    const kept: Record<string, RocCurve> = {};
    for (const [attack, curve] of Object.entries(perAttack)) {
      if (!isObject(curve) || !Array.isArray(curve.fpr) || !Array.isArray(curve.tpr)) continue;
      kept[attack] = {
        fpr: curve.fpr as number[],
        tpr: curve.tpr as number[],
        auroc: finite(curve.auroc) ? curve.auroc : null,
      };
    }
    if (Object.keys(kept).length > 0) curves[scorer] = kept;
  }
  return curves;
}

const SCORER_ORDER: string[] = ["detector", "feature squeezing", "mahalanobis"];

/** Scorers with at least one curve: the detector first, then the baselines. */
export function rocScorers(curves: RocCurves): string[] {
  const rank = (name: string) => {
    const at = SCORER_ORDER.indexOf(name);
    return at === -1 ? SCORER_ORDER.length : at;
  };
  return Object.keys(curves)
    .filter((name) => Object.keys(curves[name] ?? {}).length > 0)
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** The report if ``value`` (a ``DetectorDetailOut.report`` or an evaluate job's
 * ``result.report``) has the fields the charts need, else null. */
export function asReport(value: unknown): DetectionReport | null {
  if (!isObject(value)) return null;
  const report = value as Partial<DetectionReport>;
  if (!Array.isArray(report.rows) || !Array.isArray(report.attack_names)) return null;
  if (!Array.isArray(report.attack_confusion)) return null;
  return {
    noise_false_rejection: {},
    per_attack_auroc: {},
    ...report,
    leave_one_out: Array.isArray(report.leave_one_out) ? report.leave_one_out : [],
    unseen: Array.isArray(report.unseen) ? report.unseen : [],
    roc_curves: asRocCurves(value.roc_curves),
  } as DetectionReport;
}

/** Baseline detector names that appear in any row, sorted. */
export function baselineNames(rows: ReportRow[]): string[] {
  return [...new Set(rows.flatMap((row) => Object.keys(row.baselines ?? {})))].sort();
}
