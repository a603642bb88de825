// The detector report (DetectionReport in backend/advguard/evaluation/detection_report.py),
// typed by the API's document (`DetectorDetailOut.report`, an evaluate job's
// `result.report`). Undefined numbers (NaN) arrive as null.
import type { components } from "../api/schema";
import { finitePairs } from "./shape";

type Schemas = components["schemas"];

export type DetectionReport = Schemas["DetectionReport"];
export type ReportRow = Schemas["ReportRow"];
/** An attack the detector never trained on, run on clean test images at report time. */
export type UnseenRow = Schemas["UnseenAttackRow"];
/** A trained attack as if it were new: a detector retrained without it, judged on it. */
export type LeaveOneOutRow = Schemas["LeaveOneOutRow"];
/** One ROC curve (at most 100 points, from (0, 0) to (1, 1)) and the exact area under it. */
export type RocCurve = Schemas["RocCurve"];
/** ROC curves per scorer (the detector, the baselines), then per attack. */
export type RocCurves = DetectionReport["roc_curves"];

/** A curve's points as [fpr, tpr] pairs, keeping only pairs of finite numbers. */
export function rocPoints(curve: RocCurve): [number, number][] {
  return finitePairs(curve.fpr, curve.tpr);
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

/** Baseline detector names that appear in any row, sorted. */
export function baselineNames(rows: ReportRow[]): string[] {
  return [...new Set(rows.flatMap((row) => Object.keys(row.baselines ?? {})))].sort();
}
