import type { AttackInfo, Job, Verdict } from "../api/client";
import type { ReportRow } from "../lib/report";

export function makeJob(overrides: Partial<Job> = {}): Job {
  return {
    id: "0123456789abcdef",
    type: "build_adversarial_set",
    state: "running",
    params: { attacks: ["fgsm", "pgd"] },
    progress: { stage: "attacking: pgd 8/255", done: 3, total: 10, fraction: 0.3 },
    result: null,
    error: null,
    artifacts: {},
    attempts: 1,
    created_at: "2026-01-02T10:00:00Z",
    started_at: "2026-01-02T10:00:01Z",
    finished_at: null,
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
