import { render, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { RocCurves } from "../lib/report";
import { RocChart, RocCharts, attackStyles, rocPath } from "./RocChart";

const curves: RocCurves = {
  mahalanobis: {
    fgsm: { fpr: [0, 0.5, 1], tpr: [0, 0.6, 1], auroc: 0.55 },
    pgd: { fpr: [0, 0.4, 1], tpr: [0, 0.7, 1], auroc: 0.65 },
  },
  detector: {
    fgsm: { fpr: [0, 0.05, 0.2, 1], tpr: [0, 0.8, 0.95, 1], auroc: 0.912 },
    pgd: { fpr: [0, 0.02, 1], tpr: [0, 0.97, 1], auroc: 0.987 },
    cw: { fpr: [0, 0.3, 1], tpr: [0, 0.6, 1], auroc: null },
  },
};

describe("RocCharts", () => {
  it("draws one panel per scorer, the detector first, one path per attack", () => {
    const { container } = render(<RocCharts curves={curves} attackNames={["fgsm", "pgd", "cw"]} />);
    const panels = container.querySelectorAll("figure.line-chart");
    expect([...panels].map((panel) => panel.getAttribute("data-scorer"))).toEqual([
      "detector",
      "mahalanobis",
    ]);
    const detector = screen.getByRole("img", { name: "ROC curves: detector" });
    expect(detector.querySelectorAll("path.chart-line")).toHaveLength(3);
    expect(
      screen.getByRole("img", { name: "ROC curves: mahalanobis" }).querySelectorAll("path"),
    ).toHaveLength(2);
    // The diagonal: chance.
    expect(detector.querySelector("line.chance-line")).not.toBeNull();
    expect(detector).toHaveTextContent("false-positive rate (clean rejected)");
    expect(detector).toHaveTextContent("true-positive rate");
    expect(detector).toHaveAccessibleDescription(/fgsm AUROC 0\.912; pgd AUROC 0\.987; cw AUROC –/);
  });

  it("shows each attack's AUROC in the legend, with the same line style in every panel", () => {
    const { container } = render(<RocCharts curves={curves} attackNames={["fgsm", "pgd", "cw"]} />);
    const legend = screen.getByRole("list", { name: "detector: AUROC per attack" });
    expect(
      within(legend)
        .getAllByRole("listitem")
        .map((item) => item.textContent),
    ).toEqual(["fgsm — AUROC 0.912", "pgd — AUROC 0.987", "cw — AUROC –"]);
    expect(
      within(screen.getByRole("list", { name: "mahalanobis: AUROC per attack" }))
        .getAllByRole("listitem")
        .map((item) => item.textContent),
    ).toEqual(["fgsm — AUROC 0.550", "pgd — AUROC 0.650"]);
    const strokes = (attack: string) =>
      [...container.querySelectorAll(`path[data-series="${attack}"]`)].map((path) =>
        path.getAttribute("stroke"),
      );
    expect(new Set(strokes("pgd")).size).toBe(1);
    expect(strokes("pgd")[0]).not.toBe(strokes("fgsm")[0]);
  });

  it("says so when the report has no curves", () => {
    const { container } = render(<RocCharts curves={{}} />);
    expect(container.querySelector("svg")).toBeNull();
    expect(screen.getByText(/no ROC curves/)).toBeInTheDocument();
  });

  it("draws a scorer with no usable points without a path", () => {
    const empty = { fgsm: { fpr: [], tpr: [], auroc: null } };
    const { container } = render(
      <RocChart scorer="detector" curves={empty} styles={attackStyles({ detector: empty })} />,
    );
    expect(container.querySelectorAll("path")).toHaveLength(0);
    expect(screen.getByRole("img", { name: "ROC curves: detector" })).toBeInTheDocument();
  });
});

describe("rocPath", () => {
  it("runs from the bottom-left corner to the top-right one", () => {
    expect(rocPath({ fpr: [0, 1], tpr: [0, 1], auroc: 0.5 })).toBe("M60.0 250.0 L300.0 10.0");
    expect(rocPath({ fpr: [0, Number.NaN], tpr: [0, 1], auroc: 0.5 })).toBe("M60.0 250.0");
  });
});
