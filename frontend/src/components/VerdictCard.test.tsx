import { render, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { makeVerdict } from "../test/fixtures";
import { VerdictCard } from "./VerdictCard";

describe("VerdictCard", () => {
  it("gives a clean image's class with its probabilities, likeliest first", () => {
    render(<VerdictCard verdict={makeVerdict()} title="Verdict on scan.png" />);
    const card = screen.getByRole("region", { name: "Verdict on scan.png" });
    expect(card).toHaveTextContent("Clean — class glioma (91.0 %)");
    const classes = within(card).getByLabelText("Class probabilities");
    expect(
      within(classes)
        .getAllByRole("term")
        .map((term) => term.textContent),
    ).toEqual(["glioma", "healthy"]);
    expect(card).not.toHaveTextContent("Adversarial");
    expect(within(card).queryByRole("note")).toBeNull();
  });

  it("says when the classifier is unsure of a clean image's class", () => {
    const verdict = makeVerdict({ label: "glioma", class_probabilities: { glioma: 0.611, healthy: 0.389 } });
    render(<VerdictCard verdict={verdict} title="Verdict on grey.png" />);
    const card = screen.getByRole("region", { name: "Verdict on grey.png" });
    expect(within(card).getByRole("note")).toHaveTextContent(
      "The classifier is unsure: its likeliest class has only 61.1 %.",
    );
  });

  it("names the attack on an adversarial image and withholds the class", () => {
    const verdict = makeVerdict({
      is_adversarial: true,
      score: 0.97,
      attack: "pgd",
      attack_probabilities: { fgsm: 0.1, pgd: 0.87 },
      label: null,
    });
    render(<VerdictCard verdict={verdict} title="Guard on the attacked image" />);
    const card = screen.getByRole("region", { name: "Guard on the attacked image" });
    expect(card).toHaveTextContent("Adversarial — attack pgd (87.0 %)");
    expect(card).toHaveTextContent("Probability adversarial: 97.0 %");
    expect(card).toHaveTextContent("withheld");
    const attacks = within(card).getByLabelText("Attack probabilities");
    expect(within(attacks).getAllByRole("term")[0]).toHaveTextContent("pgd");
  });
});
