// What a trained classifier's result says about it, in the terms a user judges it by.
import type { components } from "../api/schema";

/** The part of a training job's result (and a model's metrics) that describes the model. */
export type TrainingSummary = Pick<
  components["schemas"]["TrainClassifierResult"],
  "test_accuracy" | "confusion_matrix" | "class_names" | "history"
>;

export interface ClassAccuracy {
  name: string;
  images: number;
  accuracy: number | null;
}

/** Accuracy per true class (its row of the confusion matrix). */
export function classAccuracies(summary: TrainingSummary): ClassAccuracy[] {
  return summary.class_names.map((name, i) => {
    const row = summary.confusion_matrix[i] ?? [];
    const images = row.reduce((sum, count) => sum + count, 0);
    return { name, images, accuracy: images > 0 ? (row[i] ?? 0) / images : null };
  });
}

/** How far above a trivial answer a classifier must be before it is called useful. */
export const USEFUL_MARGIN = 0.05;

/** A warning when the classifier is no better (within ``USEFUL_MARGIN``) than guessing
 * uniformly or than always answering the test split's largest class; else null. */
export function chanceWarning(summary: TrainingSummary): string | null {
  const classes = classAccuracies(summary);
  const total = classes.reduce((sum, item) => sum + item.images, 0);
  const accuracy = summary.test_accuracy;
  if (total === 0 || accuracy === null || classes.length === 0) return null;
  const largest = classes.reduce((best, item) => (item.images > best.images ? item : best));
  const majority = largest.images / total;
  const chance = 1 / classes.length;
  if (accuracy > Math.max(chance, majority) + USEFUL_MARGIN) return null;
  const pct = (value: number) => `${(value * 100).toFixed(1)} %`;
  return (
    `Test accuracy ${pct(accuracy)} is no better than guessing: one of ${classes.length} classes ` +
    `at random scores ${pct(chance)}, and always answering "${largest.name}" scores ${pct(majority)}. ` +
    "Train longer, check the labels, or use more images before trusting this model."
  );
}
