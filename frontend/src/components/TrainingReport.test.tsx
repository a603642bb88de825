import { render, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { TRAINING_SUMMARY } from "../test/fixtures";
import { chanceWarning } from "../lib/training";
import { TrainingReport } from "./TrainingReport";

const AT_CHANCE = {
  ...TRAINING_SUMMARY,
  test_accuracy: 0.25,
  class_names: ["a", "b", "c", "d"],
  // Everything called "a": right on the 25 images of "a" only.
  confusion_matrix: [
    [25, 0, 0, 0],
    [25, 0, 0, 0],
    [25, 0, 0, 0],
    [25, 0, 0, 0],
  ],
};

describe("TrainingReport", () => {
  it("shows the learning curves, the confusion matrix and accuracy per class", () => {
    render(<TrainingReport summary={TRAINING_SUMMARY} />);
    expect(screen.queryByRole("alert")).toBeNull();
    const curves = screen.getByRole("img", { name: "Learning curves" });
    expect(
      [...curves.querySelectorAll("path.chart-line")].map((path) => path.getAttribute("data-series")),
    ).toEqual(["training loss", "validation loss", "validation accuracy"]);
    const table = screen.getByRole("table", { name: "Test accuracy per class" });
    expect(
      within(table)
        .getAllByRole("row")
        .slice(1)
        .map((row) => row.textContent),
    ).toEqual(["a887.5 %", "b887.5 %"]);
  });

  it("warns when the classifier does no better than guessing or the largest class", () => {
    render(<TrainingReport summary={AT_CHANCE} />);
    expect(screen.getByRole("alert")).toHaveTextContent(
      'Test accuracy 25.0 % is no better than guessing: one of 4 classes at random scores 25.0 %, and always answering "a" scores 25.0 %.',
    );
    // A majority class of 90 %: 91 % accuracy is no better than always answering it.
    const skewed = {
      ...TRAINING_SUMMARY,
      test_accuracy: 0.91,
      confusion_matrix: [
        [90, 0],
        [9, 1],
      ],
    };
    expect(chanceWarning(skewed)).toMatch(/always answering "a" scores 90.0 %/);
    expect(chanceWarning({ ...skewed, test_accuracy: 0.99 })).toBeNull();
  });
});
