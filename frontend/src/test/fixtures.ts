import type { AttackInfo, Dataset, Detector, JobOf, Model, Verdict } from "../api/client";
import type { ReportRow } from "../lib/report";
import type { AdaptiveReport, ModelComparison, RobustnessReport } from "../lib/robustness";

type SetJob = JobOf<"build_adversarial_set">;
type Progress = SetJob["progress"];

/** A job's progress: ``done`` of ``total`` in ``stage``, its stage ``number`` of ``count``. */
export function makeProgress(
  stage: string,
  done: number,
  total: number,
  { number = 1, count = 1, eta = null }: { number?: number; count?: number; eta?: number | null } = {},
): Progress {
  const fraction = total > 0 ? done / total : 0;
  return {
    stage,
    done,
    total,
    fraction,
    stage_number: number,
    stage_count: count,
    overall: (number - 1 + fraction) / count,
    eta_s: eta,
  };
}
/** What every job has, whatever its type (a running job by default). */
export type JobFields = Omit<SetJob, "type" | "params" | "result">;

export function jobFields(overrides: Partial<JobFields> = {}): JobFields {
  return {
    id: "0123456789abcdef",
    name: "fgsm, pgd at 8/255 on net",
    state: "running",
    progress: makeProgress("attacking: pgd 8/255", 3, 10),
    error: null,
    artifacts: {},
    attempts: 1,
    created_at: "2026-01-02T10:00:00Z",
    started_at: "2026-01-02T10:00:01Z",
    finished_at: null,
    ...overrides,
  };
}

/** A running build_adversarial_set job (FGSM and PGD on model m1). */
export function makeJob(overrides: Partial<SetJob> = {}): SetJob {
  return {
    ...jobFields(),
    type: "build_adversarial_set",
    params: { type: "build_adversarial_set", model_id: "m1", attacks: ["fgsm", "pgd"] },
    result: null,
    ...overrides,
  };
}

/** What a training job's result says of the model it made. */
export const TRAINING_SUMMARY = {
  test_accuracy: 0.875,
  confusion_matrix: [
    [7, 1],
    [1, 7],
  ],
  class_names: ["a", "b"],
  train_seconds: 30,
  epochs_run: 3,
  best_epoch: 3,
  best_val_accuracy: 0.9,
  moving_average_kept: true,
  final_val_accuracy: 0.9,
  held_out_images: 8,
  history: [
    { epoch: 0, train_loss: 1.2, val_loss: 1.1, val_accuracy: 0.5, seconds: 10 },
    { epoch: 1, train_loss: 0.8, val_loss: 0.9, val_accuracy: 0.75, seconds: 10 },
    { epoch: 2, train_loss: 0.5, val_loss: 0.7, val_accuracy: 0.9, seconds: 10 },
  ],
};

export function makeDataset(overrides: Partial<Dataset> = {}): Dataset {
  return {
    id: "ds1",
    name: "shapes",
    bundled: false,
    class_names: ["a", "b"],
    counts: {},
    image_size: 32,
    channels: 1,
    created_at: "2026-01-02T10:00:00Z",
    ...overrides,
  };
}

export function makeModel(overrides: Partial<Model> = {}): Model {
  return {
    id: "m1",
    name: "net",
    origin: "trained",
    class_names: ["a", "b"],
    image_size: 32,
    channels: 1,
    dataset_id: "ds1",
    job_id: null,
    metrics: {},
    created_at: "2026-01-02T10:00:00Z",
    ...overrides,
  };
}

export function makeDetector(overrides: Partial<Detector> = {}): Detector {
  return {
    id: "d1",
    name: "guard",
    model_id: "m1",
    set_job_id: "s1",
    job_id: null,
    attack_names: ["fgsm", "pgd"],
    threshold: 0.5,
    report_job_id: null,
    created_at: "2026-01-02T10:00:00Z",
    ...overrides,
  };
}

export function makeVerdict(overrides: Partial<Verdict> = {}): Verdict {
  return {
    file: "scan.png",
    is_adversarial: false,
    score: 0.04,
    attack: null,
    attack_probabilities: { fgsm: 0.01, pgd: 0.03 },
    label: "glioma",
    class_probabilities: { glioma: 0.91, healthy: 0.09 },
    unlike_training: [],
    ...overrides,
  };
}

export function makeRow(overrides: Partial<ReportRow> = {}): ReportRow {
  return {
    attack: "pgd",
    eps: "8/255",
    images: 48,
    successful: 40,
    auroc: 0.987,
    auroc_successful: 0.99,
    auroc_failed: null,
    tpr: 0.9,
    tpr_successful: 0.95,
    tpr_failed: null,
    named_successful: 0.8,
    baselines: { "feature squeezing": 0.7, mahalanobis: 0.812 },
    ...overrides,
  };
}

/** What GET /api/v1/attacks answers (advguard.attacks.ATTACKS, abridged). */
export const ATTACK_LIST: AttackInfo[] = [
  {
    name: "cw",
    norm: "l2",
    summary: "Carlini & Wagner L2: minimise ``‖x' − x‖²₂ + c·f(x')`` in tanh space with Adam.",
    defaults: { c: 1.0, kappa: 0.0, steps: 50, lr: 0.01 },
  },
  {
    name: "fgsm",
    norm: "linf",
    summary: "Fast Gradient Sign Method: one step of size ``eps``.",
    defaults: { eps: 8 / 255 },
  },
  {
    name: "pgd",
    norm: "linf",
    summary: "Projected Gradient Descent: BIM from a uniformly random start inside the ball.",
    defaults: { eps: 8 / 255, alpha: 2 / 255, steps: 10 },
  },
  {
    name: "mim",
    norm: "linf",
    summary: "Momentum Iterative Method.",
    defaults: { eps: 4 / 255, alpha: 1 / 255, steps: 10, decay: 1.0 },
  },
];

/** A fetch stub answering JSON per "METHOD path" (path without the query). */
export function stubFetch(routes: Record<string, (request: Request) => [number, unknown]>) {
  const calls: Request[] = [];
  const fetchStub = async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(input, init);
    calls.push(request);
    const url = new URL(request.url);
    const handler = routes[`${request.method} ${url.pathname}`];
    if (!handler)
      return new Response(JSON.stringify({ detail: `no stub for ${url.pathname}` }), { status: 404 });
    const [status, body] = handler(request);
    return new Response(status === 204 ? null : JSON.stringify(body), {
      status,
      headers: { "Content-Type": "application/json" },
    });
  };
  return { fetchStub, calls };
}

/** An evaluate_robustness job's ``result.robustness``: the undefended model and JPEG
 * (plain and with BPDA) under FGSM and PGD at ε = 0, 4/255, 8/255 on 16 images. */
export const ROBUSTNESS: RobustnessReport = {
  epsilons: [0, 4 / 255, 8 / 255],
  images: 16,
  attacks: ["fgsm", "pgd"],
  defenses: ["none", "jpeg", "jpeg + BPDA"],
  clean_accuracy: { none: 0.9375, jpeg: 0.875, "jpeg + BPDA": 0.875 },
  curves: [
    { defense: "none", attack: "fgsm", accuracy: [0.9375, 0.5, 0.25], seconds: 1.2, norm: "linf" },
    { defense: "none", attack: "pgd", accuracy: [0.9375, 0.375, 0.0625], seconds: 3.4, norm: "linf" },
    { defense: "jpeg", attack: "fgsm", accuracy: [0.875, 0.75, 0.625], seconds: 1.1, norm: "linf" },
    { defense: "jpeg", attack: "pgd", accuracy: [0.875, 0.8125, 0.75], seconds: 3.1, norm: "linf" },
    { defense: "jpeg + BPDA", attack: "fgsm", accuracy: [0.875, 0.5, 0.3125], seconds: 1.3, norm: "linf" },
    { defense: "jpeg + BPDA", attack: "pgd", accuracy: [0.875, 0.25, 0], seconds: 3.3, norm: "linf" },
  ],
  worst_case: {
    none: [0.9375, 0.3125, 0],
    jpeg: [0.875, 0.6875, 0.5625],
    "jpeg + BPDA": [0.875, 0.1875, 0],
  },
  seconds: 42,
  attack_params: { fgsm: {}, pgd: { alpha: "2.5·ε/steps" } },
  query_budgets: [],
  l2_epsilons: [],
  worst_case_l2: {},
};

/** An evaluate_robustness job's ``result.adaptive`` (with a detector). */
export const ADAPTIVE: AdaptiveReport = {
  epsilons: [2 / 255, 4 / 255, 8 / 255],
  images: 16,
  settings: [
    { name: "classifier", protected_accuracy: [0.5, 0.25, 0], non_adaptive: null },
    {
      name: "classifier + detector",
      protected_accuracy: [0.75, 0.5, 0.3125],
      non_adaptive: [0.9375, 0.875, 0.875],
    },
  ],
  rows: [],
};

/** An adversarial_training job's ``result.comparison``. */
export const COMPARISON: ModelComparison = {
  epsilons: [0, 2 / 255, 4 / 255, 8 / 255],
  attacks: ["pgd", "apgd"],
  images: 16,
  models: [
    { name: "start", clean_accuracy: 0.9375, accuracy: [0.9375, 0.5, 0.125, 0] },
    { name: "PGD-AT", clean_accuracy: 0.875, accuracy: [0.875, 0.75, 0.625, 0.4375] },
  ],
  seconds: 12,
};
