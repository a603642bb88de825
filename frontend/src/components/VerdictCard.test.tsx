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

  it("says when an image does not look like the training scans, and how", () => {
    const verdict = makeVerdict({
      class_probabilities: { glioma: 0.611, healthy: 0.389 },
      unlike_training: [
        "contrast 0.000 (training scans 0.130–0.357)",
        "edges 0.000 (training scans 0.007–0.128)",
      ],
    });
    render(<VerdictCard verdict={verdict} title="Verdict on grey.png" />);
    const card = screen.getByRole("region", { name: "Verdict on grey.png" });
    const unlike = within(card).getByRole("note", { name: "Unlike the training scans" });
    expect(unlike).toHaveTextContent("does not look like the scans the guard was trained on");
    expect(
      within(unlike)
        .getAllByRole("listitem")
        .map((item) => item.textContent),
    ).toEqual(["contrast 0.000 (training scans 0.130–0.357)", "edges 0.000 (training scans 0.007–0.128)"]);
    expect(within(card).getByRole("note", { name: "Unsure" })).toBeInTheDocument();
  });

  it("says nothing about appearance for a guard that did not record it", () => {
    render(<VerdictCard verdict={makeVerdict({ unlike_training: null })} title="Verdict on scan.png" />);
    expect(screen.queryByRole("note")).toBeNull();
  });

  it("does not name an attack that the detector's attack head does not recognise", () => {
    const verdict = makeVerdict({
      is_adversarial: true,
      score: 0.985,
      attack: "pgd",
      attack_probabilities: { fgsm: 0.0001, pgd: 0.0002 },
      label: null,
    });
    render(<VerdictCard verdict={verdict} title="Verdict on grey.png" />);
    const card = screen.getByRole("region", { name: "Verdict on grey.png" });
    expect(card).toHaveTextContent("Adversarial — like none of its attacks (closest: pgd)");
    expect(card).toHaveTextContent("gives its attacks only 0.0 % together");
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
