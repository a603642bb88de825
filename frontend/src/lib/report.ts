// The detector report (DetectionReport.to_dict in backend/advguard/evaluation/
// detection_report.py). The API types it as a free-form object, so its shape is checked
// here before it is drawn. Undefined numbers (NaN) arrive as null.

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

export interface DetectionReport {
  threshold: number;
  clean_images: number;
  clean_false_rejection: number | null;
  noise_false_rejection: Record<string, number | null>;
  rows: ReportRow[];
  per_attack_auroc: Record<string, number | null>;
  leave_one_out_auroc: Record<string, number | null>;
  attack_names: string[];
  attack_confusion: number[][];
  naming_accuracy: number | null;
  family_accuracy: number | null;
  guard_accuracy_clean: number | null;
  seconds: number;
}

/** The report if ``value`` has the fields the charts need, else null. */
export function asReport(value: unknown): DetectionReport | null {
  if (value === null || typeof value !== "object") return null;
  const report = value as Partial<DetectionReport>;
  if (!Array.isArray(report.rows) || !Array.isArray(report.attack_names)) return null;
  if (!Array.isArray(report.attack_confusion)) return null;
  return {
    noise_false_rejection: {},
    per_attack_auroc: {},
    leave_one_out_auroc: {},
    ...report,
  } as DetectionReport;
}

/** Baseline detector names that appear in any row, sorted. */
export function baselineNames(rows: ReportRow[]): string[] {
  return [...new Set(rows.flatMap((row) => Object.keys(row.baselines ?? {})))].sort();
}
