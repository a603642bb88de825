import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AttackResult } from "../api/client";
import { ATTACK_LIST, makeDetector, makeVerdict, stubFetch } from "../test/fixtures";
import { renderPage } from "../test/render";
import { LiveTestPage } from "./LiveTestPage";

const attacked: AttackResult = {
  attack: "cw",
  params: { c: 1, steps: 50 },
  linf: 0.02,
  l2: 0.4,
  adversarial_png: "",
  perturbation_png: "",
  original: makeVerdict(),
  adversarial: makeVerdict({ is_adversarial: true, attack: "pgd", label: null }),
};

function setUp() {
  const sent: FormData[] = [];
  const stub = stubFetch({
    "GET /api/v1/attacks": () => [200, ATTACK_LIST],
    "GET /api/v1/detectors": () => [200, [makeDetector()]],
    "POST /api/v1/predict": () => [200, { detector_id: "d1", threshold: 0.5, verdicts: [makeVerdict()] }],
    "POST /api/v1/attack": () => [200, attacked],
    "GET /api/v1/query-attacks": () => [
      200,
      { enabled: true, policy: "flag", window: 1800, flag_at: 8, clients: [] },
    ],
  });
  const fetchStub = async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(input, init);
    if (request.method === "POST" && new URL(request.url).pathname === "/api/v1/attack")
      sent.push(await request.clone().formData());
    return stub.fetchStub(request);
  };
  vi.stubGlobal("fetch", fetchStub);
  renderPage(<LiveTestPage />);
  return { sent };
}

afterEach(() => vi.unstubAllGlobals());

describe("LiveTestPage: attack this image", () => {
  it("offers the API's attacks with their norms, PGD and its default ε first", async () => {
    setUp();
    const form = screen.getByRole("form", { name: "Attack this image" });
    const select = within(form).getByLabelText("Attack");
    await within(select).findByRole("option", { name: "PGD (L∞)" });
    expect(
      within(select)
        .getAllByRole("option")
        .map((option) => option.textContent),
    ).toEqual(["CW (L2, no ε)", "FGSM (L∞)", "PGD (L∞)", "MIM (L∞)"]);
    expect(select).toHaveValue("pgd");
    const budget = within(form).getByLabelText("Budget ε");
    expect(budget).toBeEnabled();
    expect(budget).toHaveValue("8/255");
    await userEvent.selectOptions(select, "mim");
    expect(budget).toHaveValue("4/255");
    await userEvent.clear(budget);
    await userEvent.type(budget, "4x");
    expect(budget).toHaveAccessibleDescription(
      'budget "4x" is not a number: write 8/255, 0.031 or 8 (= 8/255)',
    );
    await userEvent.clear(budget);
    await userEvent.type(budget, "0.02");
    expect(budget).toHaveAccessibleDescription("Write 8/255, 0.031 or 8 (= 8/255): ε = 0.02000");
  });

  it("runs an L2 attack without a budget", async () => {
    const { sent } = setUp();
    const form = screen.getByRole("form", { name: "Attack this image" });
    const select = within(form).getByLabelText("Attack");
    await within(select).findByRole("option", { name: "CW (L2, no ε)" });
    await userEvent.selectOptions(select, "cw");
    const budget = within(form).getByLabelText("Budget ε");
    expect(budget).toBeDisabled();
    expect(budget).toHaveAccessibleDescription("CW is an L2 attack: it runs at its defaults, without ε");
    expect(within(form).getByText(/Carlini & Wagner L2/)).toBeInTheDocument();

    await userEvent.upload(
      screen.getByLabelText("Image (PNG, JPEG or DICOM)"),
      new File([new Uint8Array([1, 2, 3])], "scan.png", { type: "image/png" }),
    );
    await screen.findByRole("region", { name: "Verdict on scan.png" });
    await userEvent.click(within(form).getByRole("button", { name: "Attack this image" }));
    expect(await screen.findByTestId("attack-outcome")).toHaveTextContent("The guard caught it");
    expect(sent).toHaveLength(1);
    expect(sent[0]!.get("attack")).toBe("cw");
    expect(sent[0]!.has("eps")).toBe(false);
  });
});
