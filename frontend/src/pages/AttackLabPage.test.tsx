import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ATTACK_LIST, makeDataset, makeJob, makeModel, stubFetch } from "../test/fixtures";
import { postedJson, renderPage } from "../test/render";
import { remember, remembered } from "../lib/search";
import { AttackLabPage, budgetHint } from "./AttackLabPage";

function setUp(attacks: () => [number, unknown] = () => [200, ATTACK_LIST]) {
  const job = makeJob({ id: "ffffffff00000000", state: "queued" });
  const stub = stubFetch({
    "GET /api/v1/attacks": attacks,
    "GET /api/v1/datasets": () => [200, [makeDataset()]],
    "GET /api/v1/models": () => [200, [makeModel()]],
    "GET /api/v1/jobs": () => [200, { items: [], total: 0 }],
    "POST /api/v1/jobs": () => [202, job],
    [`GET /api/v1/jobs/${job.id}`]: () => [200, job],
  });
  vi.stubGlobal("fetch", stub.fetchStub);
  renderPage(<AttackLabPage />);
  return stub;
}

afterEach(() => vi.unstubAllGlobals());

describe("AttackLabPage", () => {
  it("offers the attacks the API lists, with their norms; FGSM and PGD to start with", async () => {
    setUp();
    const form = screen.getByRole("form", { name: "Build an adversarial set" });
    const boxes = await within(form).findAllByRole("checkbox");
    expect(boxes.map((box) => (box as HTMLInputElement).value)).toEqual(["cw", "fgsm", "pgd", "mim"]);
    expect(within(form).getByRole("checkbox", { name: /^FGSM L∞/ })).toBeChecked();
    expect(within(form).getByRole("checkbox", { name: /^PGD L∞/ })).toBeChecked();
    expect(within(form).getByRole("checkbox", { name: /^CW L2 no ε/ })).not.toBeChecked();
    expect(within(form).getByText("eps", { selector: "code" })).toBeInTheDocument();
    expect(within(form).getByLabelText("Budgets ε (comma-separated)")).toHaveAccessibleDescription(
      "For the L∞ attacks (FGSM, PGD, MIM); CW (L2) runs once at its defaults, without ε. " +
        "Write 8/255, 0.031 or 8 (= 8/255). ε = 2/255, 4/255, 8/255",
    );
  });

  it("sends the budgets with L∞ attacks", async () => {
    const { calls } = setUp();
    const form = screen.getByRole("form", { name: "Build an adversarial set" });
    await within(form).findByRole("option", { name: "net (m1)" });
    await userEvent.click(within(form).getByRole("checkbox", { name: /^PGD/ }));
    await userEvent.click(within(form).getByRole("checkbox", { name: /^CW/ }));
    const budgets = within(form).getByLabelText("Budgets ε (comma-separated)");
    await userEvent.clear(budgets);
    await userEvent.type(budgets, "4, 8");
    await userEvent.click(within(form).getByRole("button", { name: "Build adversarial set" }));
    expect(await postedJson(calls)).toMatchObject({ attacks: ["fgsm", "cw"], eps: [4 / 255, 8 / 255] });
  });

  it("takes no budgets for L2 attacks alone", async () => {
    const { calls } = setUp();
    const form = screen.getByRole("form", { name: "Build an adversarial set" });
    await within(form).findByRole("option", { name: "net (m1)" });
    await userEvent.click(within(form).getByRole("checkbox", { name: /^FGSM/ }));
    await userEvent.click(within(form).getByRole("checkbox", { name: /^PGD/ }));
    await userEvent.click(within(form).getByRole("checkbox", { name: /^CW/ }));
    expect(within(form).getByLabelText("Budgets ε (comma-separated)")).toBeDisabled();
    await userEvent.click(within(form).getByRole("button", { name: "Build adversarial set" }));
    const body = await postedJson(calls);
    expect(body.attacks).toEqual(["cw"]);
    expect(body).not.toHaveProperty("eps");
  });

  it("comes back to the set looked at last, and remembers the one just started", async () => {
    remember("set", "ffffffff00000000");
    setUp();
    const panel = screen.getByRole("region", { name: "Adversarial set" });
    expect(await within(panel).findByText("fgsm, pgd at 8/255 on net")).toBeInTheDocument();
    window.localStorage.clear();
    const form = screen.getByRole("form", { name: "Build an adversarial set" });
    await within(form).findAllByRole("checkbox");
    await userEvent.click(within(form).getByRole("button", { name: "Build adversarial set" }));
    await vi.waitFor(() => expect(remembered("set")).toBe("ffffffff00000000"));
  });

  it("shows the API's error when the attacks cannot be listed", async () => {
    setUp(() => [503, { detail: "the service is starting" }]);
    const form = screen.getByRole("form", { name: "Build an adversarial set" });
    expect(await within(form).findByRole("alert")).toHaveTextContent(
      "Could not list the attacks: the service is starting (HTTP 503)",
    );
    expect(within(form).getByRole("button", { name: "Build adversarial set" })).toBeDisabled();
  });
});

describe("budgetHint", () => {
  it("names the attacks that take budgets and those that do not", () => {
    expect(budgetHint([])).toBeUndefined();
    expect(budgetHint(ATTACK_LIST.slice(1, 3))).toBe("For the L∞ attacks (FGSM, PGD)");
  });
});
