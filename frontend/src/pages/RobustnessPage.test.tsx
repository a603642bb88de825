import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Job, JobOf } from "../api/client";
import {
  ADAPTIVE,
  ATTACK_LIST,
  COMPARISON,
  makeDataset,
  makeDetector,
  makeModel,
  ROBUSTNESS,
  jobFields,
  type JobFields,
  stubFetch,
  TRAINING_SUMMARY,
  makeProgress,
} from "../test/fixtures";
import { postedJson, renderPage } from "../test/render";
import { RobustnessPage } from "./RobustnessPage";

const evaluation: JobOf<"evaluate_robustness"> = {
  ...jobFields({
    id: "eeeeeeee00000001",
    name: "robustness of net",
    state: "succeeded",
    progress: makeProgress("jpeg + BPDA: pgd ε=8/255", 96, 96),
    artifacts: {
      json: "/api/v1/artifacts/jobs/eeeeeeee00000001/robustness/robustness.json",
      markdown: "/api/v1/artifacts/jobs/eeeeeeee00000001/robustness/robustness.md",
      plot: "/api/v1/artifacts/jobs/eeeeeeee00000001/robustness/robustness.png",
    },
    finished_at: "2026-01-02T10:01:00Z",
  }),
  type: "evaluate_robustness",
  params: { type: "evaluate_robustness", model_id: "m1", attacks: ["fgsm", "pgd"], defenses: ["jpeg"] },
  result: { robustness: ROBUSTNESS, adaptive: ADAPTIVE, artifacts: {} },
};

const training: JobOf<"adversarial_training"> = {
  ...jobFields({
    id: "tttttttt00000002",
    name: "PGD-AT of net",
    state: "succeeded",
    progress: makeProgress("comparing", 4, 4),
    finished_at: "2026-01-02T10:05:00Z",
  }),
  type: "adversarial_training",
  params: { type: "adversarial_training", method: "pgd", eps: 8 / 255 },
  result: { ...TRAINING_SUMMARY, model_id: "m9", comparison: COMPARISON, artifacts: {} },
};

const report: JobOf<"model_report"> = {
  ...jobFields({
    id: "rrrrrrrr00000003",
    name: "report on net",
    state: "succeeded",
    progress: makeProgress("adaptive attack", 16, 16),
    artifacts: { report: "/api/v1/artifacts/jobs/rrrrrrrr00000003/report/report.html" },
    finished_at: "2026-01-02T10:09:00Z",
  }),
  type: "model_report",
  params: { type: "model_report", model_id: "m1", detector_id: "d1" },
  result: {
    clean_accuracy: 0.9375,
    robustness: {
      ...ROBUSTNESS,
      attacks: ["fgsm", "autoattack"],
      curves: [
        ...ROBUSTNESS.curves.filter((curve) => curve.attack === "fgsm"),
        { defense: "none", attack: "autoattack", accuracy: [0.9375, 0.25, 0.0625], seconds: 9, norm: "linf" },
      ],
    },
    adaptive: ADAPTIVE,
    artifacts: {},
  },
};

/** An evaluate_robustness job of model m1 under PGD, with no result yet. */
function evaluationJob(fields: Partial<JobFields>): JobOf<"evaluate_robustness"> {
  return {
    ...jobFields(fields),
    type: "evaluate_robustness",
    params: { type: "evaluate_robustness", model_id: "m1", attacks: ["pgd"] },
    result: null,
  };
}

function setUp({ jobs = [evaluation, training, report] }: { jobs?: Job[] } = {}) {
  const queued = evaluationJob({ id: "ffffffff00000000", state: "queued" });
  const byId = new Map([...jobs, queued].map((job) => [job.id, job]));
  const routes: Record<string, (request: Request) => [number, unknown]> = {
    "GET /api/v1/attacks": () => [200, ATTACK_LIST],
    "GET /api/v1/datasets": () => [200, [makeDataset()]],
    "GET /api/v1/models": () => [
      200,
      [
        makeModel({ id: "m1", name: "net m1" }),
        makeModel({ id: "m2", name: "net m2" }),
        makeModel({ id: "ts", origin: "torchscript", name: "scripted" }),
      ],
    ],
    "GET /api/v1/detectors": () => [
      200,
      [
        makeDetector({ id: "d1", name: "guard d1", model_id: "m1" }),
        makeDetector({ id: "d2", name: "guard d2", model_id: "m2" }),
      ],
    ],
    "GET /api/v1/jobs": (request) => {
      const type = new URL(request.url).searchParams.get("type");
      const items = jobs.filter((job) => job.type === type);
      return [200, { items, total: items.length }];
    },
    "POST /api/v1/jobs": () => [202, queued],
  };
  for (const [id, job] of byId) routes[`GET /api/v1/jobs/${id}`] = () => [200, job];
  const stub = stubFetch(routes);
  vi.stubGlobal("fetch", stub.fetchStub);
  renderPage(<RobustnessPage />);
  return stub;
}

afterEach(() => vi.unstubAllGlobals());

describe("RobustnessPage: results", () => {
  it("shows the newest evaluation: charts per defense, the worst cases, tables, files, the adaptive test", async () => {
    setUp();
    const panel = screen.getByRole("region", { name: "Accuracy under attack" });
    const report = await within(panel).findByTestId("robustness-report");
    expect(within(panel).getByLabelText("Evaluation")).toHaveDisplayValue(
      /^robustness of net — fgsm, pgd \+ jpeg — succeeded/,
    );
    expect(within(panel).getByRole("progressbar")).toHaveAttribute("aria-valuenow", "100");
    for (const defense of ["none", "jpeg", "jpeg + BPDA"])
      expect(within(report).getByRole("img", { name: `Accuracy against ε: ${defense}` })).toBeInTheDocument();
    const worst = within(report).getByRole("img", { name: "Worst-case accuracy against ε per defense" });
    expect(worst.querySelector("path[data-series='jpeg + BPDA']")).toHaveAttribute("stroke-dasharray", "6 3");
    const table = within(report).getByRole("table", { name: "jpeg + BPDA (clean accuracy 87.5 %)" });
    expect(within(table).getByRole("row", { name: /^worst case/ })).toHaveTextContent("87.5 %18.8 %0.0 %");
    expect(within(report).getByRole("link", { name: "Download the plot (robustness.png)" })).toHaveAttribute(
      "href",
      evaluation.artifacts.plot,
    );
    expect(
      within(panel).getByRole("img", { name: "Protected accuracy against ε (adaptive attack)" }),
    ).toBeInTheDocument();
    expect(
      within(panel).getByRole("table", { name: "Protected accuracy under the adaptive attack" }),
    ).toBeInTheDocument();
  });

  it("shows the adversarially trained model against its start, with links to it", async () => {
    setUp();
    const panel = screen.getByRole("region", { name: "Adversarially trained models" });
    const comparison = await within(panel).findByTestId("training-comparison");
    expect(within(panel).getByLabelText("Training")).toHaveDisplayValue(
      /^PGD-AT of net — PGD-AT ε=8\/255 — succeeded/,
    );
    expect(within(comparison).getByRole("row", { name: /^start/ })).toHaveTextContent(
      "start93.8 %50.0 %12.5 %0.0 %",
    );
    expect(within(panel).getByRole("status")).toHaveTextContent("New model m9: test accuracy 87.5 %");
    expect(within(panel).getByRole("link", { name: "See it among the models" })).toHaveAttribute(
      "href",
      "/models?id=m9",
    );
  });

  it("says so when there are no jobs yet", async () => {
    setUp({ jobs: [] });
    const panel = screen.getByRole("region", { name: "Accuracy under attack" });
    expect(await within(panel).findByText("None yet: start one above.")).toBeInTheDocument();
  });

  it("follows a running evaluation with its stage and progress", async () => {
    const running = evaluationJob({
      id: "rrrrrrrr00000003",
      progress: makeProgress("jpeg + BPDA: pgd ε=4/255", 48, 96),
    });
    setUp({ jobs: [running] });
    const panel = screen.getByRole("region", { name: "Accuracy under attack" });
    expect(await within(panel).findByText(/jpeg \+ BPDA: pgd ε=4\/255 — 48 \/ 96/)).toBeInTheDocument();
    expect(within(panel).getByRole("progressbar")).toHaveAttribute("aria-valuenow", "50");
    expect(within(panel).getByRole("button", { name: "Cancel" })).toBeInTheDocument();
    expect(within(panel).queryByTestId("robustness-report")).toBeNull();
  });
});

describe("RobustnessPage: evaluate form", () => {
  it("sends the attacks, the budget grid, defenses, limit and the model's detector", async () => {
    const { calls } = setUp({ jobs: [] });
    const form = screen.getByRole("form", { name: "Evaluate robustness" });
    await within(form).findByRole("option", { name: "guard d1 (d1)" });
    // Only the detectors of the chosen model are offered.
    expect(within(form).queryByRole("option", { name: "guard d2 (d2)" })).toBeNull();
    for (const attack of ["CW", "MIM"])
      await userEvent.click(within(form).getByRole("checkbox", { name: new RegExp(`^${attack}`) }));
    const budgets = within(form).getByLabelText("Budgets ε (comma-separated)");
    await userEvent.clear(budgets);
    await userEvent.type(budgets, "0, 8/255");
    const radii = within(form).getByLabelText("L2 radii ε₂ (comma-separated)");
    await userEvent.clear(radii);
    await userEvent.type(radii, "0, 1");
    await userEvent.click(within(form).getByRole("checkbox", { name: "JPEG compression" }));
    await userEvent.click(within(form).getByRole("checkbox", { name: "bit-depth reduction" }));
    const limit = within(form).getByLabelText("Test images (a random sample)");
    await userEvent.clear(limit);
    await userEvent.type(limit, "16");
    await userEvent.selectOptions(
      within(form).getByLabelText("Detector for the adaptive test (optional)"),
      "d1",
    );
    await userEvent.click(within(form).getByRole("button", { name: "Evaluate robustness" }));
    expect(await postedJson(calls)).toEqual({
      type: "evaluate_robustness",
      model_id: "m1",
      dataset_id: "ds1",
      attacks: ["fgsm", "pgd"],
      eps: [0, 8 / 255],
      l2_eps: [0, 1],
      defenses: ["bit_depth", "jpeg"],
      limit: 16,
      detector_id: "d1",
    });
  });

  it("starts with the API's default attacks and budgets, and no detector", async () => {
    const { calls } = setUp({ jobs: [] });
    const form = screen.getByRole("form", { name: "Evaluate robustness" });
    await within(form).findByRole("checkbox", { name: /^CW/ });
    await within(form).findByRole("option", { name: "net m1 (m1)" });
    await userEvent.selectOptions(within(form).getByLabelText("Model"), "m2");
    await userEvent.click(within(form).getByRole("button", { name: "Evaluate robustness" }));
    const body = await postedJson(calls);
    expect(body).toMatchObject({
      model_id: "m2",
      attacks: ["fgsm", "pgd", "mim", "cw"],
      defenses: [],
      limit: 200,
    });
    expect(body.eps).toEqual([0, 1, 2, 4, 8, 16].map((steps) => steps / 255));
    expect(body.l2_eps).toEqual([0, 0.25, 0.5, 1]);
    expect(body).not.toHaveProperty("detector_id");
  });

  it("says what is wrong with the budgets, the attacks or the image count, and sends nothing", async () => {
    const { calls } = setUp({ jobs: [] });
    const form = screen.getByRole("form", { name: "Evaluate robustness" });
    await within(form).findByRole("option", { name: "net m1 (m1)" });
    const submit = within(form).getByRole("button", { name: "Evaluate robustness" });
    const budgets = within(form).getByLabelText("Budgets ε (comma-separated)");
    await userEvent.clear(budgets);
    await userEvent.type(budgets, "0, 4/255, four");
    await userEvent.click(submit);
    expect(within(form).getByRole("alert")).toHaveTextContent(
      'budget "four" is not a number: write 8/255, 0.031 or 8 (= 8/255)',
    );
    await userEvent.clear(budgets);
    await userEvent.type(budgets, "0, 8");
    const limit = within(form).getByLabelText("Test images (a random sample)");
    await userEvent.clear(limit);
    await userEvent.type(limit, "0");
    await userEvent.click(submit);
    expect(within(form).getByRole("alert")).toHaveTextContent(
      "the number of images must be a whole number from 1 to 100000",
    );
    for (const box of within(form).getAllByRole("checkbox", { checked: true }))
      if ((box as HTMLInputElement).name === "attacks") await userEvent.click(box);
    await userEvent.click(submit);
    expect(within(form).getByRole("alert")).toHaveTextContent("choose at least one attack");
    expect(calls.some((request) => request.method === "POST")).toBe(false);
  });
});

describe("RobustnessPage: adversarial training form", () => {
  it("sends PGD-AT from scratch by default, without β", async () => {
    const { calls } = setUp({ jobs: [] });
    const form = screen.getByRole("form", { name: "Train adversarially" });
    await within(form).findByRole("option", { name: "shapes" });
    expect(within(form).queryByLabelText("β (weight of the robustness term)")).toBeNull();
    // TorchScript archives cannot be trained further.
    expect(within(form).queryByRole("option", { name: /scripted/ })).toBeNull();
    await userEvent.click(within(form).getByRole("button", { name: "Train adversarially" }));
    expect(await postedJson(calls)).toEqual({
      type: "adversarial_training",
      dataset_id: "ds1",
      model_id: null,
      name: null,
      method: "pgd",
      eps: 8 / 255,
      steps: 5,
      epochs: 10,
    });
  });

  it("shows β for TRADES only, and sends it with the start model", async () => {
    const { calls } = setUp({ jobs: [] });
    const form = screen.getByRole("form", { name: "Train adversarially" });
    await within(form).findByRole("option", { name: "net m2 (m2)" });
    await userEvent.selectOptions(within(form).getByLabelText("Start from"), "m2");
    await userEvent.selectOptions(within(form).getByLabelText("Method"), "trades");
    const beta = within(form).getByLabelText("β (weight of the robustness term)");
    await userEvent.clear(beta);
    await userEvent.type(beta, "3");
    const eps = within(form).getByLabelText("Budget ε");
    await userEvent.clear(eps);
    await userEvent.type(eps, "4");
    await userEvent.type(within(form).getByLabelText("Name (optional)"), "robust net");
    await userEvent.click(within(form).getByRole("button", { name: "Train adversarially" }));
    expect(await postedJson(calls)).toEqual({
      type: "adversarial_training",
      dataset_id: "ds1",
      model_id: "m2",
      name: "robust net",
      method: "trades",
      eps: 4 / 255,
      steps: 5,
      beta: 3,
      epochs: 10,
    });
  });

  it("refuses a budget beyond the API's limit with a message", async () => {
    const { calls } = setUp({ jobs: [] });
    const form = screen.getByRole("form", { name: "Train adversarially" });
    await within(form).findByRole("option", { name: "shapes" });
    const eps = within(form).getByLabelText("Budget ε");
    await userEvent.clear(eps);
    await userEvent.type(eps, "64");
    await userEvent.click(within(form).getByRole("button", { name: "Train adversarially" }));
    expect(within(form).getByRole("alert")).toHaveTextContent('budget "64" is over the limit of 0.2500');
    expect(calls.some((request) => request.method === "POST")).toBe(false);
  });
});

describe("RobustnessPage: the report to hand over", () => {
  it("shows the newest report's numbers and its download", async () => {
    setUp();
    const panel = screen.getByRole("region", { name: "Reports" });
    const shown = await within(panel).findByTestId("model-report");
    expect(within(shown).getByText("Clean accuracy").nextSibling).toHaveTextContent("93.8 %");
    expect(within(shown).getByText("AutoAttack at ε = 8/255").nextSibling).toHaveTextContent("6.3 %");
    const download = within(shown).getByRole("link", { name: "Download the report (report.html)" });
    expect(download).toHaveAttribute("href", report.artifacts.report);
    expect(download).toHaveAttribute("download");
  });

  it("sends the model, the dataset, the sample size and the model's detector", async () => {
    const { calls } = setUp({ jobs: [] });
    const form = screen.getByRole("form", { name: "Build the report" });
    await within(form).findByRole("option", { name: "guard d1 (d1)" });
    const limit = within(form).getByLabelText("Test images (a random sample)");
    await userEvent.clear(limit);
    await userEvent.type(limit, "50");
    await userEvent.selectOptions(within(form).getByLabelText("Detector to include (optional)"), "d1");
    await userEvent.click(within(form).getByRole("button", { name: "Build the report" }));
    expect(await postedJson(calls)).toEqual({
      type: "model_report",
      model_id: "m1",
      dataset_id: "ds1",
      limit: 50,
      detector_id: "d1",
    });
  });
});
