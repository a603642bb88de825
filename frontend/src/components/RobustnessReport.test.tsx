import { render, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ADAPTIVE, COMPARISON, ROBUSTNESS } from "../test/fixtures";
import { budgetTicks } from "./AccuracyChart";
import { lineStyles } from "./LineChart";
import {
  AdaptiveView,
  ComparisonView,
  DefenseChart,
  defenseStyles,
  RobustnessView,
  WorstCaseChart,
} from "./RobustnessReport";

const report = ROBUSTNESS;

const series = (chart: HTMLElement) =>
  [...chart.querySelectorAll("path.chart-line")].map((path) => path.getAttribute("data-series"));

describe("DefenseChart", () => {
  it("draws a line per attack and the worst case on top, thick and black", () => {
    render(<DefenseChart report={report} defense="none" styles={lineStyles(report.attacks)} />);
    const chart = screen.getByRole("img", { name: "Accuracy against ε: none" });
    expect(series(chart)).toEqual(["fgsm", "pgd", "worst case"]);
    const worst = chart.querySelector("path[data-series='worst case']")!;
    expect(worst).toHaveClass("chart-line-emphasis");
    expect(worst.getAttribute("stroke")).toBe("#1b1f24");
    expect(chart.querySelector("path[data-series='fgsm']")).not.toHaveClass("chart-line-emphasis");
    // From (0, 93.75 %) to (1, 0 %) of the plot: x 48..288, y 250..10.
    expect(worst.getAttribute("d")).toBe("M60.0 25.0 L180.0 175.0 L300.0 250.0");
    // A dot at every point, so that a two-budget grid still shows.
    expect(chart.querySelectorAll("circle.chart-marker")).toHaveLength(9);
    expect(chart).toHaveTextContent("budget ε (L∞)");
    expect(chart).toHaveTextContent("accuracy");
    expect(chart).toHaveAccessibleDescription(
      /ε \(0, 4\/255, 8\/255; evenly spaced\): fgsm 93\.8 %, 50\.0 %, 25\.0 %; pgd .*; worst case \(every attack\) 93\.8 %, 31\.3 %, 0\.0 %/,
    );
    const legend = screen.getByRole("list", { name: "none: attacks" });
    expect(
      within(legend)
        .getAllByRole("listitem")
        .map((item) => item.textContent),
    ).toEqual(["fgsm", "pgd", "worst case (every attack)"]);
    expect(screen.getByText("none — clean accuracy 93.8 %")).toBeInTheDocument();
  });

  it("leaves out points the result does not have", () => {
    const gappy = { ...report, worst_case: { ...report.worst_case, none: [0.9, null, 0.1] } };
    render(<DefenseChart report={gappy} defense="none" styles={lineStyles(report.attacks)} />);
    const worst = screen
      .getByRole("img", { name: "Accuracy against ε: none" })
      .querySelector("path[data-series='worst case']");
    expect(worst?.getAttribute("d")).toBe("M60.0 34.0 L300.0 226.0");
  });
});

describe("WorstCaseChart", () => {
  it("compares every defense's worst case, BPDA dashed in its defense's colour", () => {
    render(<WorstCaseChart report={report} />);
    const chart = screen.getByRole("img", { name: "Worst-case accuracy against ε per defense" });
    expect(series(chart)).toEqual(["none", "jpeg", "jpeg + BPDA"]);
    const path = (name: string) => chart.querySelector(`path[data-series='${name}']`)!;
    expect(path("jpeg").getAttribute("stroke-dasharray")).toBeNull();
    expect(path("jpeg + BPDA").getAttribute("stroke-dasharray")).toBe("6 3");
    expect(path("jpeg + BPDA").getAttribute("stroke")).toBe(path("jpeg").getAttribute("stroke"));
    expect(path("none").getAttribute("stroke")).not.toBe(path("jpeg").getAttribute("stroke"));
    expect(screen.getByRole("list", { name: "Worst case per defense" })).toHaveTextContent(
      "jpeg + BPDA (dashed)",
    );
  });

  it("gives each preprocessing its own colour", () => {
    const styles = defenseStyles(["none", "jpeg", "jpeg + BPDA", "median", "median + BPDA"]);
    expect(styles.get("median")!.colour).not.toBe(styles.get("jpeg")!.colour);
    expect(styles.get("median + BPDA")).toEqual({ colour: styles.get("median")!.colour, dash: "6 3" });
  });
});

describe("budgetTicks", () => {
  it("spreads the budgets evenly and labels them as the backend writes them", () => {
    expect(budgetTicks([0, 4 / 255, 8 / 255])).toEqual([
      { at: 0, label: "0" },
      { at: 0.5, label: "4/255" },
      { at: 1, label: "8/255" },
    ]);
    expect(budgetTicks([8 / 255])).toEqual([{ at: 0.5, label: "8/255" }]);
  });

  it("labels every other tick of a long grid, and always the last", () => {
    const labels = budgetTicks(Array.from({ length: 12 }, (_, i) => i / 255)).map((tick) => tick.label);
    expect(labels.filter(Boolean)).toEqual(["0", "2/255", "4/255", "6/255", "8/255", "10/255", "11/255"]);
  });
});

describe("RobustnessView", () => {
  it("shows a chart per defense, the comparison, tables with the worst case, and the files", () => {
    render(
      <RobustnessView report={report} artifacts={{ plot: "/p.png", markdown: "/r.md", json: "/r.json" }} />,
    );
    for (const defense of report.defenses)
      expect(screen.getByRole("img", { name: `Accuracy against ε: ${defense}` })).toBeInTheDocument();
    expect(
      screen.getByRole("img", { name: "Worst-case accuracy against ε per defense" }),
    ).toBeInTheDocument();
    const table = screen.getByRole("table", { name: "none (clean accuracy 93.8 %)" });
    expect(
      within(table)
        .getAllByRole("columnheader")
        .map((cell) => cell.textContent),
    ).toEqual(["attack", "clean", "ε 4/255", "ε 8/255"]);
    const worst = within(table).getByRole("row", { name: /^worst case/ });
    expect(worst).toHaveClass("emphasis-row");
    expect(
      within(worst)
        .getAllByRole("cell")
        .map((cell) => cell.textContent),
    ).toEqual(["93.8 %", "31.3 %", "0.0 %"]);
    expect(
      within(screen.getByRole("table", { name: "Worst case per defense" })).getByRole("row", {
        name: /^jpeg \+ BPDA/,
      }).textContent,
    ).toBe("jpeg + BPDA87.5 %18.8 %0.0 %"); // clean once, not again as ε 0
    expect(screen.getByText("Worst case at the largest ε").nextSibling).toHaveTextContent("0.0 %");
    expect(screen.getByRole("link", { name: "Download the plot (robustness.png)" })).toHaveAttribute(
      "href",
      "/p.png",
    );
    expect(screen.getByRole("link", { name: "robustness.md" })).toHaveAttribute("href", "/r.md");
  });

  it("leads with AutoAttack when the result has it: the headline number and the first row", () => {
    const withAutoAttack = {
      ...ROBUSTNESS,
      attacks: ["fgsm", "autoattack"],
      curves: [
        ...ROBUSTNESS.curves.filter((curve) => curve.attack === "fgsm"),
        { defense: "none", attack: "autoattack", accuracy: [0.9375, 0.25, 0.0625], seconds: 9, norm: "linf" },
        { defense: "jpeg", attack: "autoattack", accuracy: [0.875, 0.5, 0.375], seconds: 9, norm: "linf" },
        {
          defense: "jpeg + BPDA",
          attack: "autoattack",
          accuracy: [0.875, 0.125, 0],
          seconds: 9,
          norm: "linf",
        },
      ],
    };
    render(<RobustnessView report={withAutoAttack} artifacts={{}} />);
    expect(
      screen.getByText("AutoAttack (standard) robust accuracy at ε = 8/255").nextSibling,
    ).toHaveTextContent("6.3 %");
    const table = screen.getByRole("table", { name: "none (clean accuracy 93.8 %)" });
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows.map((row) => within(row).getByRole("rowheader").textContent)).toEqual([
      "AutoAttack (standard)",
      "fgsm",
      "worst case",
    ]);
    expect(rows[0]).toHaveClass("emphasis-row");
  });

  it("gives the L2 attacks their own grid: radii as columns, AutoAttack L2 first, CW on both grids", () => {
    const none = { defense: "none", seconds: 5 };
    const withL2 = {
      ...ROBUSTNESS,
      attacks: ["pgd", "autoattack-l2", "cw"],
      defenses: ["none"],
      curves: [
        { ...none, attack: "pgd", accuracy: [0.9375, 0.375, 0.0625], norm: "linf" },
        { ...none, attack: "autoattack-l2", accuracy: [0.9375, 0.5, 0.125], norm: "l2" },
        { ...none, attack: "cw", accuracy: [0.9375, 0.625, 0.5], norm: "linf" },
        { ...none, attack: "cw", accuracy: [0.9375, 0.75, 0.25], norm: "l2" },
      ],
      worst_case: { none: [0.9375, 0.3125, 0.0625] },
      l2_epsilons: [0, 0.5, 1],
      worst_case_l2: { none: [0.9375, 0.5, 0.125] },
    };
    render(<RobustnessView report={withL2} artifacts={{}} />);
    expect(
      screen.getByText("AutoAttack L2 (standard) robust accuracy at ε₂ = 1").nextSibling,
    ).toHaveTextContent("12.5 %");
    const linf = screen.getByRole("img", { name: "Accuracy against ε: none" });
    expect(series(linf)).toEqual(["pgd", "cw", "worst case"]);
    const l2 = screen.getByRole("img", { name: "Accuracy against the L2 radius: none" });
    expect(series(l2)).toEqual(["autoattack-l2", "cw", "worst case"]);
    expect(l2).toHaveTextContent("budget ε (L2)");
    const table = screen.getByRole("table", { name: "none, L2 radii (clean accuracy 93.8 %)" });
    expect(
      within(table)
        .getAllByRole("columnheader")
        .map((cell) => cell.textContent),
    ).toEqual(["attack", "clean", "ε₂ 0.5", "ε₂ 1"]);
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows.map((row) => row.textContent)).toEqual([
      "AutoAttack L2 (standard)93.8 %50.0 %12.5 %",
      "cw93.8 %75.0 %25.0 %",
      "worst case93.8 %50.0 %12.5 %",
    ]);
  });

  it("gives a decision-based attack's accuracy per query budget", () => {
    const withQueries = {
      ...ROBUSTNESS,
      query_budgets: [
        { defense: "none", attack: "hopskipjump", queries: 250, accuracy: [0.9375, 0.875, 0.75] },
        { defense: "none", attack: "hopskipjump", queries: 1000, accuracy: [0.9375, 0.5, 0.25] },
      ],
    };
    render(<RobustnessView report={withQueries} artifacts={{}} />);
    const table = screen.getByRole("table", {
      name: "none: decision-based attack (top-1 labels only) by query budget per image",
    });
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows.map((row) => row.textContent)).toEqual([
      "hopskipjump ≤ 25093.8 %87.5 %75.0 %",
      "hopskipjump ≤ 1,00093.8 %50.0 %25.0 %",
    ]);
  });

  it("draws no comparison for the undefended model alone", () => {
    const alone = {
      ...ROBUSTNESS,
      defenses: ["none"],
      curves: ROBUSTNESS.curves.filter((curve) => curve.defense === "none"),
    };
    render(<RobustnessView report={alone} artifacts={{}} />);
    expect(screen.getAllByRole("img")).toHaveLength(1);
    expect(screen.queryByRole("table", { name: "Worst case per defense" })).toBeNull();
  });
});

describe("AdaptiveView", () => {
  it("draws protected accuracy per setting, the non-adaptive attack dashed, and a table", () => {
    render(<AdaptiveView adaptive={ADAPTIVE} />);
    const chart = screen.getByRole("img", { name: "Protected accuracy against ε (adaptive attack)" });
    expect(series(chart)).toEqual([
      "classifier",
      "classifier + detector",
      "classifier + detector (non-adaptive)",
    ]);
    expect(
      chart
        .querySelector("path[data-series='classifier + detector (non-adaptive)']")!
        .getAttribute("stroke-dasharray"),
    ).toBe("6 3");
    const row = screen.getByRole("row", { name: /^classifier \+ detector 75/ });
    expect(
      within(row)
        .getAllByRole("cell")
        .map((cell) => cell.textContent),
    ).toEqual(["75.0 %", "50.0 %", "31.3 %"]);
  });
});

describe("ComparisonView", () => {
  it("compares the start model with the trained one: clean, then per budget", () => {
    render(<ComparisonView comparison={COMPARISON} />);
    const chart = screen.getByRole("img", {
      name: "Accuracy against ε before and after adversarial training",
    });
    expect(series(chart)).toEqual(["start", "PGD-AT"]);
    const table = screen.getByRole("table", { name: /16 test images/ });
    expect(
      within(table)
        .getAllByRole("columnheader")
        .map((cell) => cell.textContent),
    ).toEqual(["model", "clean", "ε 2/255", "ε 4/255", "ε 8/255"]);
    expect(within(table).getByRole("row", { name: /^PGD-AT/ }).textContent).toBe(
      "PGD-AT87.5 %75.0 %62.5 %43.8 %",
    );
  });
});
