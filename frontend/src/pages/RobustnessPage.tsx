import { useState, type FormEvent, type ReactNode } from "react";
import { Link } from "react-router";
import type { DefenseName, JobOf, JobType } from "../api/client";
import { isActive, useCreateJob, useDetectors, useJobs } from "../api/queries";
import { AttackChecks, useAttackChoice } from "../components/AttackChecks";
import { ErrorMessage } from "../components/ErrorMessage";
import { Field, NumberInput } from "../components/Field";
import { JobResult, JobTracker } from "../components/JobProgress";
import { ModelDatasetFields, useModelDataset } from "../components/ModelDatasetFields";
import { Page, Panel } from "../components/Page";
import { AdaptiveView, AUTOATTACK, ComparisonView, RobustnessView } from "../components/RobustnessReport";
import { SubmitJob } from "../components/SubmitJob";
import {
  BUDGET_SYNTAX,
  budgetEcho,
  duration,
  formatEps,
  formatTime,
  L2_BUDGET_SYNTAX,
  parseBudget,
  parseBudgets,
  percent,
  rangeProblem,
  shortId,
} from "../lib/format";
import {
  budgetLabel,
  curveOf,
  NO_DEFENSE,
  REPORT_ATTACKS,
  ROBUSTNESS_ATTACKS,
  ROBUSTNESS_BUDGETS,
  ROBUSTNESS_L2_BUDGETS,
} from "../lib/robustness";
import { useSearchState } from "../lib/search";

/** The preprocessing defenses, in the order the API lists them. */
export const DEFENSES: { name: DefenseName; label: string }[] = [
  { name: "bit_depth", label: "bit-depth reduction" },
  { name: "median", label: "median filter" },
  { name: "jpeg", label: "JPEG compression" },
  { name: "gaussian_blur", label: "Gaussian blur" },
];
const MAX_IMAGES = 100_000;
/** The API's bound on the adversarial-training budget. */
const MAX_TRAINING_EPS = 0.25;

/** The detectors that guard ``model`` (a detector guards the model it was trained with;
 * only those can stand in front of it), and the one chosen among them. */
function useGuardChoice(model: { id: string } | undefined) {
  const detectors = useDetectors();
  const [detectorId, setDetectorId] = useState("");
  const guards = (detectors.data ?? []).filter((detector) => detector.model_id === model?.id);
  const detector = guards.find((candidate) => candidate.id === detectorId);
  return { guards, detector, setDetectorId, error: detectors.error };
}

type GuardChoice = ReturnType<typeof useGuardChoice>;

function GuardSelect({ label, hint, choice }: { label: string; hint?: string; choice: GuardChoice }) {
  return (
    <Field label={label} hint={hint}>
      <select
        value={choice.detector?.id ?? ""}
        onChange={(event) => choice.setDetectorId(event.target.value)}
      >
        <option value="">
          {choice.guards.length === 0 ? "none (no detector guards this model)" : "none"}
        </option>
        {choice.guards.map((candidate) => (
          <option key={candidate.id} value={candidate.id}>
            {candidate.name} ({shortId(candidate.id)})
          </option>
        ))}
      </select>
    </Field>
  );
}

function EvaluateForm({
  initialModelId,
  onStarted,
}: {
  initialModelId: string;
  onStarted: (jobId: string) => void;
}) {
  const choice = useModelDataset({ initialModelId });
  const attacks = useAttackChoice(ROBUSTNESS_ATTACKS);
  const create = useCreateJob();
  const [budgets, setBudgets] = useState(ROBUSTNESS_BUDGETS);
  const [l2Budgets, setL2Budgets] = useState(ROBUSTNESS_L2_BUDGETS);
  const [defenses, setDefenses] = useState<DefenseName[]>([]);
  const [limit, setLimit] = useState(200);
  const [problem, setProblem] = useState<string | null>(null);
  const { model } = choice;
  const guard = useGuardChoice(model);
  const { detector } = guard;

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setProblem(null);
    if (!model) return setProblem("upload or train a model first");
    if (attacks.chosen.length === 0) return setProblem("choose at least one attack");
    let eps: number[];
    let l2Eps: number[];
    try {
      eps = parseBudgets(budgets, { allowZero: true });
      l2Eps = parseBudgets(l2Budgets, { allowZero: true, norm: "l2" });
    } catch (error) {
      return setProblem((error as Error).message);
    }
    const wrongLimit = rangeProblem("the number of images", limit, 1, MAX_IMAGES);
    if (wrongLimit) return setProblem(wrongLimit);
    create.mutate(
      {
        type: "evaluate_robustness",
        model_id: model.id,
        dataset_id: choice.datasetId,
        attacks: attacks.chosen,
        eps,
        l2_eps: l2Eps,
        defenses: DEFENSES.filter(({ name }) => defenses.includes(name)).map(({ name }) => name),
        limit,
        ...(detector ? { detector_id: detector.id } : {}),
      },
      { onSuccess: (job) => onStarted(job.id) },
    );
  };

  return (
    <form className="form" onSubmit={submit} aria-label="Evaluate robustness" noValidate>
      <ModelDatasetFields choice={choice} />
      <AttackChecks
        choice={attacks}
        hint="L∞ attacks run at each budget ε, L2 attacks at each L2 radius. CW, DeepFool and HopSkipJump find their own perturbation and run once: an image counts as broken at a budget when they fooled the model within it."
      />
      <Field
        label="Budgets ε (comma-separated)"
        hint={[
          `Write ${BUDGET_SYNTAX}; 0 is the clean accuracy. At most 16`,
          budgetEcho(budgets, { allowZero: true }),
        ]
          .filter(Boolean)
          .join(". ")}
      >
        <input value={budgets} onChange={(event) => setBudgets(event.target.value)} required />
      </Field>
      <Field
        label="L2 radii ε₂ (comma-separated)"
        hint={[
          `For the L2 attacks (pgd-l2, apgd-l2, autoattack-l2, …): write ${L2_BUDGET_SYNTAX}`,
          budgetEcho(l2Budgets, { allowZero: true, norm: "l2" }),
        ]
          .filter(Boolean)
          .join(". ")}
      >
        <input value={l2Budgets} onChange={(event) => setL2Budgets(event.target.value)} />
      </Field>
      <fieldset>
        <legend>Defenses</legend>
        <p className="muted small fieldset-hint">
          The undefended model is always evaluated. Each defense is attacked plainly and with BPDA (the attack
          differentiates through an identity in place of the preprocessing), which exposes gradient masking.
        </p>
        <div className="checks">
          {DEFENSES.map(({ name, label }) => (
            <label key={name} className="check">
              <input
                type="checkbox"
                name="defenses"
                value={name}
                checked={defenses.includes(name)}
                onChange={(event) =>
                  setDefenses(
                    event.target.checked ? [...defenses, name] : defenses.filter((other) => other !== name),
                  )
                }
              />
              {label}
            </label>
          ))}
        </div>
      </fieldset>
      <div className="field-row">
        <Field label="Test images (a random sample)">
          <NumberInput min={1} max={MAX_IMAGES} value={limit} onChange={setLimit} />
        </Field>
        <GuardSelect
          label="Detector for the adaptive test (optional)"
          hint="An attack that knows the detector: how many attacked images it rejects or the model still classifies correctly."
          choice={guard}
        />
      </div>
      <SubmitJob
        label="Evaluate robustness"
        disabled={create.isPending || !model || attacks.known.length === 0}
        problem={problem}
        startError={create.error}
        loadError={choice.error ?? guard.error}
      />
    </form>
  );
}

/** The handover report: one self-contained HTML file, measured by a job. */
function ReportForm({ onStarted }: { onStarted: (jobId: string) => void }) {
  const choice = useModelDataset({});
  const create = useCreateJob();
  const [limit, setLimit] = useState(200);
  const [problem, setProblem] = useState<string | null>(null);
  const { model } = choice;
  const guard = useGuardChoice(model);
  const { detector } = guard;

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setProblem(null);
    if (!model) return setProblem("upload or train a model first");
    const wrongLimit = rangeProblem("the number of images", limit, 1, MAX_IMAGES);
    if (wrongLimit) return setProblem(wrongLimit);
    create.mutate(
      {
        type: "model_report",
        model_id: model.id,
        dataset_id: choice.datasetId,
        limit,
        ...(detector ? { detector_id: detector.id } : {}),
      },
      { onSuccess: (job) => onStarted(job.id) },
    );
  };

  return (
    <form className="form" onSubmit={submit} aria-label="Build the report" noValidate>
      <p className="muted small fieldset-hint">
        One HTML file to attach to the model&apos;s records: clean accuracy, AutoAttack (L∞ and L2), accuracy
        under {REPORT_ATTACKS.join(", ")} over the default budgets, PGD behind every preprocessing defense
        with and without BPDA, and with a detector its report (attacks it never saw included) and the adaptive
        attack. Every figure says how it was measured. It opens offline and prints to PDF.
      </p>
      <ModelDatasetFields choice={choice} />
      <div className="field-row">
        <Field label="Test images (a random sample)">
          <NumberInput min={1} max={MAX_IMAGES} value={limit} onChange={setLimit} />
        </Field>
        <GuardSelect label="Detector to include (optional)" choice={guard} />
      </div>
      <SubmitJob
        label="Build the report"
        disabled={create.isPending || !model}
        problem={problem}
        startError={create.error}
        loadError={choice.error ?? guard.error}
      />
    </form>
  );
}

function TrainForm({ onStarted }: { onStarted: (jobId: string) => void }) {
  // Adversarial training changes the weights: TorchScript archives cannot be trained.
  const choice = useModelDataset({ optional: true, accept: (model) => model.origin !== "torchscript" });
  const create = useCreateJob();
  const [name, setName] = useState("");
  const [method, setMethod] = useState<"pgd" | "trades">("pgd");
  const [eps, setEps] = useState("8/255");
  const [steps, setSteps] = useState(5);
  const [beta, setBeta] = useState(6);
  const [epochs, setEpochs] = useState(10);
  const [problem, setProblem] = useState<string | null>(null);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setProblem(null);
    let budget: number;
    try {
      budget = parseBudget(eps, { max: MAX_TRAINING_EPS });
    } catch (error) {
      return setProblem(error instanceof Error ? error.message : String(error));
    }
    const wrong =
      rangeProblem("the attack steps", steps, 1, 50) ??
      (method === "trades" ? rangeProblem("β", beta, 0, 100, false) : null) ??
      rangeProblem("the epochs", epochs, 1, 500);
    if (wrong) return setProblem(wrong);
    create.mutate(
      {
        type: "adversarial_training",
        dataset_id: choice.datasetId,
        model_id: choice.model?.id ?? null,
        name: name.trim() || null,
        method,
        eps: budget,
        steps,
        ...(method === "trades" ? { beta } : {}),
        epochs,
      },
      { onSuccess: (job) => onStarted(job.id) },
    );
  };

  return (
    <form className="form" onSubmit={submit} aria-label="Train adversarially" noValidate>
      <p className="muted">
        Trains on attacked images so that the model resists them; the result is a new model, compared with its
        start under PGD on the test split.
      </p>
      <ModelDatasetFields choice={choice} modelLabel="Start from" noModel="a new CNN (from scratch)" />
      <div className="field-row">
        <Field label="Method">
          <select value={method} onChange={(event) => setMethod(event.target.value as "pgd" | "trades")}>
            <option value="pgd">PGD adversarial training (Madry et al.)</option>
            <option value="trades">TRADES (Zhang et al.)</option>
          </select>
        </Field>
        <Field label="Name (optional)">
          <input value={name} onChange={(event) => setName(event.target.value)} maxLength={200} />
        </Field>
      </div>
      <div className="field-row">
        <Field label="Budget ε" hint={`Write ${BUDGET_SYNTAX}; at most ${MAX_TRAINING_EPS}`}>
          <input value={eps} onChange={(event) => setEps(event.target.value)} inputMode="decimal" required />
        </Field>
        <Field label="Attack steps">
          <NumberInput min={1} max={50} value={steps} onChange={setSteps} />
        </Field>
        {method === "trades" ? (
          <Field label="β (weight of the robustness term)">
            <NumberInput min={0} max={100} step={0.5} value={beta} onChange={setBeta} />
          </Field>
        ) : null}
        <Field label="Epochs">
          <NumberInput min={1} max={500} value={epochs} onChange={setEpochs} />
        </Field>
      </div>
      <SubmitJob
        label="Train adversarially"
        disabled={create.isPending}
        problem={problem}
        startError={create.error}
        loadError={choice.error}
      />
    </form>
  );
}

/** The jobs of one type, newest first, to choose from; the chosen one followed live and
 * shown once it has succeeded, and the others that are still running with their progress. */
function JobChoice<T extends JobType>({
  type,
  label,
  chosen,
  onChoose,
  describe,
  children,
}: {
  type: T;
  label: string;
  chosen: string | undefined;
  onChoose: (jobId: string) => void;
  describe: (job: JobOf<T>) => string;
  children: (job: JobOf<T>) => ReactNode;
}) {
  const jobs = useJobs({ type, limit: 50 });
  const items = jobs.data?.items ?? [];
  const selected = chosen ?? items[0]?.id;
  const running = items.filter((job) => isActive(job.state) && job.id !== selected);
  return (
    <>
      <ErrorMessage error={jobs.error} />
      {jobs.data && items.length === 0 && !selected ? (
        <p className="muted">None yet: start one above.</p>
      ) : null}
      {selected ? (
        <Field label={label}>
          <select value={selected} onChange={(event) => onChoose(event.target.value)}>
            {items.some((job) => job.id === selected) ? null : (
              <option value={selected}>{shortId(selected)}</option>
            )}
            {items.map((job) => (
              <option key={job.id} value={job.id}>
                {job.name} — {describe(job)} — {job.state} — {formatTime(job.created_at)}
              </option>
            ))}
          </select>
        </Field>
      ) : null}
      {selected ? (
        <JobResult jobId={selected} type={type}>
          {children}
        </JobResult>
      ) : null}
      {running.length > 0 ? (
        <div className="also-running">
          <h3>Also running</h3>
          {running.map((job) => (
            <JobTracker key={job.id} jobId={job.id} />
          ))}
        </div>
      ) : null}
    </>
  );
}

function describeEvaluation(job: JobOf<"evaluate_robustness">): string {
  const defenses = (job.params.defenses ?? []).join(", ");
  return `${(job.params.attacks ?? []).join(", ") || "default attacks"}${defenses ? ` + ${defenses}` : ""}`;
}

function describeTraining(job: JobOf<"adversarial_training">): string {
  const eps = job.params.eps === undefined ? "" : ` ε=${formatEps(job.params.eps)}`;
  return `${job.params.method === "trades" ? "TRADES" : "PGD-AT"}${eps}`;
}

function EvaluationResult({ job }: { job: JobOf<"evaluate_robustness"> }) {
  if (!job.result) return null;
  const { robustness, adaptive } = job.result;
  return (
    <>
      <RobustnessView
        report={robustness}
        artifacts={job.artifacts}
        took={duration(job.started_at, job.finished_at)}
      />
      {adaptive ? (
        <>
          <h3>Adaptive attack on the detector</h3>
          <AdaptiveView adaptive={adaptive} />
        </>
      ) : null}
    </>
  );
}

function ReportResult({ job }: { job: JobOf<"model_report"> }) {
  if (!job.result) return null;
  const { clean_accuracy: clean, robustness } = job.result;
  const autoattack = curveOf(robustness, NO_DEFENSE, AUTOATTACK.linf)?.accuracy.at(-1);
  const largest = robustness.epsilons.at(-1);
  return (
    <div className="report" data-testid="model-report">
      <dl className="stats">
        <div>
          <dt>Clean accuracy</dt>
          <dd>{percent(clean)}</dd>
        </div>
        {autoattack !== undefined && largest !== undefined ? (
          <div className="headline">
            <dt>AutoAttack at ε = {budgetLabel(largest)}</dt>
            <dd>{percent(autoattack)}</dd>
          </div>
        ) : null}
        <div>
          <dt>Took</dt>
          <dd>{duration(job.started_at, job.finished_at)}</dd>
        </div>
      </dl>
      {job.artifacts.report ? (
        <p>
          <a className="button" href={job.artifacts.report} download>
            Download the report (report.html)
          </a>
        </p>
      ) : null}
    </div>
  );
}

function TrainingResult({ job }: { job: JobOf<"adversarial_training"> }) {
  if (!job.result) return null;
  const { model_id: modelId, test_accuracy: accuracy, comparison } = job.result;
  return (
    <>
      <p className="success" role="status">
        New model <code>{modelId}</code>: test accuracy {percent(accuracy)}.{" "}
        <Link to={`/models?id=${modelId}`}>See it among the models</Link> ·{" "}
        <Link to={`/attack?model=${modelId}`}>attack it in the attack lab</Link>
      </p>
      <ComparisonView comparison={comparison} />
    </>
  );
}

export function RobustnessPage() {
  const [search, update] = useSearchState();
  return (
    <Page
      title="Robustness"
      intro="How accurate a classifier stays under attack as the budget ε grows, behind preprocessing defenses (attacked plainly and with BPDA) and against a detector-aware attack; and adversarial training to make it more robust."
    >
      <div className="columns">
        <Panel title="Evaluate robustness">
          <EvaluateForm initialModelId={search.get("model") ?? ""} onStarted={(job) => update({ job })} />
        </Panel>
        <Panel title="Adversarial training">
          <TrainForm onStarted={(training) => update({ training })} />
        </Panel>
      </div>
      <Panel title="Accuracy under attack">
        <JobChoice
          type="evaluate_robustness"
          label="Evaluation"
          chosen={search.get("job") ?? undefined}
          onChoose={(job) => update({ job })}
          describe={describeEvaluation}
        >
          {(job) => <EvaluationResult job={job} />}
        </JobChoice>
      </Panel>
      <div className="columns">
        <Panel title="Report to hand over">
          <ReportForm onStarted={(report) => update({ report })} />
        </Panel>
        <Panel title="Reports">
          <JobChoice
            type="model_report"
            label="Report"
            chosen={search.get("report") ?? undefined}
            onChoose={(report) => update({ report })}
            describe={(job) => (job.params.detector_id ? "with its detector" : "classifier only")}
          >
            {(job) => <ReportResult job={job} />}
          </JobChoice>
        </Panel>
      </div>
      <Panel title="Adversarially trained models">
        <JobChoice
          type="adversarial_training"
          label="Training"
          chosen={search.get("training") ?? undefined}
          onChoose={(training) => update({ training })}
          describe={describeTraining}
        >
          {(job) => <TrainingResult job={job} />}
        </JobChoice>
      </Panel>
    </Page>
  );
}
