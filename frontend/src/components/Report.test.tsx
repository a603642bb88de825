import { render, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { makeRow } from "../test/fixtures";
import { AurocChart } from "./AurocChart";
import { AurocTable, UnseenTable } from "./AurocTable";
import { ConfusionHeatmap } from "./ConfusionHeatmap";

const rows = [makeRow({ attack: "fgsm", auroc: 0.912, tpr: 0.5 }), makeRow()];

describe("AurocTable", () => {
  it("has one row per attack and budget, with the baselines as columns", () => {
    render(<AurocTable rows={rows} />);
    const table = screen.getByRole("table", { name: /AUROC per attack and budget/ });
    const headers = within(table)
      .getAllByRole("columnheader")
      .map((cell) => cell.textContent);
    expect(headers).toContain("AUROC feature squeezing");
    expect(headers).toContain("AUROC mahalanobis");
    const pgd = within(table).getByRole("row", { name: /^pgd/ });
    expect(
      within(pgd)
        .getAllByRole("cell")
        .map((cell) => cell.textContent),
    ).toEqual(["8/255", "48", "40", "0.987", "0.990", "90.0 %", "80.0 %", "0.700", "0.812"]);
  });

  it("writes missing numbers (NaN sent as null) as a dash", () => {
    render(
      <AurocTable rows={[makeRow({ auroc_successful: null, named_successful: null, baselines: {} })]} />,
    );
    const cells = within(screen.getByRole("row", { name: /^pgd/ })).getAllByRole("cell");
    expect(cells[4]).toHaveTextContent("–");
    expect(cells[6]).toHaveTextContent("–");
  });
});

describe("UnseenTable", () => {
  it("has one row per unseen attack with its AUROC and detection rate", () => {
    const square = {
      attack: "square",
      eps: "8/255",
      images: 100,
      successful: 61,
      auroc: 0.901,
      auroc_successful: 0.953,
      tpr: 0.4,
      tpr_successful: 0.525,
      seconds: 80,
    };
    render(<UnseenTable rows={[square]} />);
    const table = screen.getByRole("table", { name: /never in the detector's training/ });
    const cells = within(within(table).getByRole("row", { name: /^square/ })).getAllByRole("cell");
    expect(cells.map((cell) => cell.textContent)).toEqual(["8/255", "100", "61", "0.953", "52.5 %", "0.901"]);
  });

  it("says so when the report ran no unseen attack", () => {
    render(<UnseenTable rows={[]} />);
    expect(screen.getByText(/ran no attack outside/)).toBeInTheDocument();
  });
});

describe("AurocChart", () => {
  it("draws one bar per attack, budget and detector", () => {
    const { container } = render(<AurocChart rows={rows} />);
    expect(screen.getByRole("img", { name: "AUROC per attack and budget" })).toBeInTheDocument();
    expect(container.querySelectorAll("rect")).toHaveLength(rows.length * 3);
    expect(container.querySelector("rect title")?.textContent).toBe("fgsm 8/255 — detector: 0.912");
  });
});

describe("ConfusionHeatmap", () => {
  it("labels both axes and gives each cell its count and share of its row", () => {
    const { container } = render(
      <ConfusionHeatmap
        labels={["clean", "fgsm", "pgd"]}
        matrix={[
          [95, 2, 3],
          [5, 19, 6],
          [0, 6, 38],
        ]}
        title="Guard answers"
        rowsTitle="true"
        columnsTitle="guard answered"
        caption="What the guard answered."
      />,
    );
    const chart = screen.getByRole("img", { name: "Guard answers" });
    const texts = [...chart.querySelectorAll("text")].map((text) => text.textContent);
    expect(texts.slice(0, 5)).toEqual(["guard answered", "true", "clean", "fgsm", "pgd"]);
    const cell = container.querySelector("[data-cell='fgsm|pgd']")!;
    expect([...cell.querySelectorAll("text")].map((text) => text.textContent)).toEqual(["6", "20 %"]);
    expect(cell.querySelector("title")?.textContent).toBe("true fgsm, guard answered pgd: 6 (20 % of fgsm)");
    // Shaded by the share of the row: the clean row's 95 % darker than pgd's 86 %.
    const fill = (key: string) => container.querySelector(`[data-cell='${key}'] rect`)!.getAttribute("fill");
    expect(fill("clean|clean")).toBe("rgba(31, 95, 191, 0.953)");
    expect(fill("pgd|clean")).toBe("rgba(31, 95, 191, 0.060)");
    expect(screen.getByText("What the guard answered.")).toBeInTheDocument();
  });

  it("tilts column labels too long for a cell, and keeps room for them", () => {
    render(
      <ConfusionHeatmap
        labels={["meningioma", "pituitary"]}
        matrix={[
          [1, 0],
          [0, 1],
        ]}
        title="Classes"
        rowsTitle="true class"
        columnsTitle="predicted"
        caption=""
      />,
    );
    const chart = screen.getByRole("img", { name: "Classes" });
    const column = [...chart.querySelectorAll("text")].find((text) =>
      text.getAttribute("transform")?.startsWith("rotate(-35"),
    );
    expect(column?.textContent).toBe("meningioma");
    const [, , width] = chart.getAttribute("viewBox")!.split(" ").map(Number);
    expect(width).toBeGreaterThan(2 * 64 + 10 * 7);
  });
});
