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
  it("draws the attack-type confusion matrix cell by cell", () => {
    const { container } = render(
      <ConfusionHeatmap
        names={["fgsm", "pgd"]}
        matrix={[
          [19, 6],
          [6, 38],
        ]}
      />,
    );
    expect(screen.getByRole("img", { name: /Attack-type confusion/ })).toBeInTheDocument();
    const titles = [...container.querySelectorAll("rect title")].map((title) => title.textContent);
    expect(titles).toEqual([
      "true fgsm, named fgsm: 19",
      "true fgsm, named pgd: 6",
      "true pgd, named fgsm: 6",
      "true pgd, named pgd: 38",
    ]);
  });
});
