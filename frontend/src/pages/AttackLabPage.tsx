import { useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import type { AttackInfo, Job } from "../api/client";
import { useAttacks, useCreateJob, useDatasets, useJob, useJobs, useModels } from "../api/queries";
import { Field } from "../components/Field";
import { ErrorMessage } from "../components/ErrorMessage";
import { Gallery } from "../components/Gallery";
import { JobTracker } from "../components/JobProgress";
import { Page, Panel } from "../components/Page";
import { AttackSummary } from "../components/AttackSummary";
import { defaultAttacks, normLabel, takesBudget } from "../lib/attacks";
import { decimal, formatEps, formatTime, parseBudgets, percent, shortId } from "../lib/format";

interface RobustnessRow {
  attack: string;
  eps: number | null;
  clean_accuracy: number | null;
  adversarial_accuracy: number | null;
  success_rate: number | null;
  mean_l2: number | null;
  max_linf: number | null;
}

/** Which attacks the budgets apply to: "For the L∞ attacks (FGSM, PGD); CW (L2) runs once
 * at its defaults, without ε". */
export function budgetHint(attacks: AttackInfo[]): string | undefined {
  const name = (attack: AttackInfo) => attack.name.toUpperCase();
  const linf = attacks.filter((attack) => takesBudget(attack));
  const other = attacks.filter((attack) => !takesBudget(attack));
  const parts = [];
  if (linf.length > 0) parts.push(`For the L∞ attacks (${linf.map(name).join(", ")})`);
  for (const attack of other)
    parts.push(`${name(attack)} (${normLabel(attack.norm)}) runs once at its defaults, without ε`);
  return parts.length > 0 ? parts.join("; ") : undefined;
}

function BuildForm({ onStarted }: { onStarted: (jobId: string) => void }) {
  const [search] = useSearchParams();
  const datasets = useDatasets();
  const models = useModels();
  const catalogue = useAttacks();
  const create = useCreateJob();
  const [datasetId, setDatasetId] = useState("");
  const [modelId, setModelId] = useState(search.get("model") ?? "");
  // null until the user ticks or unticks one: then FGSM and PGD, where the API lists them.
  const [picked, setPicked] = useState<string[] | null>(null);
  const [budgets, setBudgets] = useState("2, 4, 8");
  const [fraction, setFraction] = useState(0.3);
  const [problem, setProblem] = useState<string | null>(null);

  const model = models.data?.find((m) => m.id === modelId) ?? models.data?.[0];
  // Default to the dataset the model was trained on, else the newest one.
  const chosenDataset =
    datasetId ||
    (model?.dataset_id && datasets.data?.some((d) => d.id === model.dataset_id) ? model.dataset_id : "") ||
    datasets.data?.at(-1)?.id ||
    "";
  const dataset = datasets.data?.find((d) => d.id === chosenDataset);
  const known = catalogue.data ?? [];
  const attacks = (picked ?? defaultAttacks(known, ["fgsm", "pgd"])).filter((name) =>
    known.some((attack) => attack.name === name),
  );
  const needsBudgets = known.some((attack) => attacks.includes(attack.name) && takesBudget(attack));
  const mismatch =
    model &&
    dataset &&
    dataset.class_names.length > 0 &&
    dataset.class_names.join("\n") !== model.class_names.join("\n");

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setProblem(null);
    if (!model) return setProblem("upload or train a model first");
    if (attacks.length === 0) return setProblem("choose at least one attack");
    // Only L∞ attacks take budgets; L2 ones (CW) run once at their defaults.
    let eps: number[] | undefined;
    if (needsBudgets) {
      try {
        eps = parseBudgets(budgets);
      } catch (error) {
        return setProblem((error as Error).message);
      }
    }
    create.mutate(
      {
        type: "build_adversarial_set",
        dataset_id: chosenDataset,
        model_id: model.id,
        attacks,
        ...(eps ? { eps } : {}),
        fraction,
      },
      { onSuccess: (job) => onStarted(job.id) },
    );
  };

  return (
    <form className="form" onSubmit={submit} aria-label="Build an adversarial set">
      <div className="field-row">
        <Field label="Dataset">
          <select value={chosenDataset} onChange={(event) => setDatasetId(event.target.value)}>
            {(datasets.data ?? []).map((d) => (
              <option key={d.id} value={d.id}>
                {d.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Model">
          <select value={model?.id ?? ""} onChange={(event) => setModelId(event.target.value)}>
            {(models.data ?? []).length === 0 ? <option value="">no models yet</option> : null}
            {(models.data ?? []).map((m) => (
              <option key={m.id} value={m.id}>
                {m.name} ({shortId(m.id)})
              </option>
            ))}
          </select>
        </Field>
      </div>
      {mismatch ? (
        <p className="warning" role="status">
          The model&apos;s classes ({model.class_names.join(", ")}) differ from the dataset&apos;s (
          {dataset.class_names.join(", ")}): the API will refuse this pair.
        </p>
      ) : null}
      <fieldset>
        <legend>Attacks</legend>
        {catalogue.isPending ? <p className="muted">Loading the attacks…</p> : null}
        <ErrorMessage title="Could not list the attacks" error={catalogue.error} />
        <div className="checks attack-checks">
          {known.map((attack) => (
            <label key={attack.name} className="check" data-norm={attack.norm}>
              <input
                type="checkbox"
                name="attacks"
                value={attack.name}
                checked={attacks.includes(attack.name)}
                onChange={(event) =>
                  setPicked(
                    event.target.checked
                      ? [...attacks, attack.name]
                      : attacks.filter((a) => a !== attack.name),
                  )
                }
              />
              <span>
                <strong>{attack.name.toUpperCase()}</strong>{" "}
                <span className="norm-badge">{normLabel(attack.norm)}</span>{" "}
                {takesBudget(attack) ? null : <span className="muted small">no ε </span>}
                <AttackSummary summary={attack.summary} />
              </span>
            </label>
          ))}
        </div>
      </fieldset>
      <div className="field-row">
        <Field label="Budgets ε, in 1/255 steps (comma-separated)" hint={budgetHint(known)}>
          <input
            value={budgets}
            onChange={(event) => setBudgets(event.target.value)}
            inputMode="decimal"
            disabled={!needsBudgets}
            required={needsBudgets}
          />
        </Field>
        <Field label="Share of images attacked per attack and ε">
          <input
            type="number"
            min={0.01}
            max={1}
            step={0.01}
            value={fraction}
            onChange={(event) => setFraction(event.target.valueAsNumber)}
            required
          />
        </Field>
      </div>
      <div className="actions">
        <button type="submit" disabled={create.isPending || !model || known.length === 0}>
          Build adversarial set
        </button>
      </div>
      <ErrorMessage error={problem} />
      <ErrorMessage title="Could not start the job" error={create.error} />
      <ErrorMessage error={datasets.error ?? models.error} />
    </form>
  );
}

function RobustnessTable({ rows }: { rows: RobustnessRow[] }) {
  if (rows.length === 0) return null;
  return (
    <div className="table-wrap">
      <table className="data">
        <caption>The classifier under attack (test split)</caption>
        <thead>
          <tr>
            <th scope="col">attack</th>
            <th scope="col">ε</th>
            <th scope="col" className="num">
              accuracy before
            </th>
            <th scope="col" className="num">
              accuracy after
            </th>
            <th scope="col" className="num">
              success rate
            </th>
            <th scope="col" className="num">
              mean L2
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={`${row.attack} ${row.eps}`}>
              <th scope="row">{row.attack}</th>
              <td>{formatEps(row.eps)}</td>
              <td className="num">{percent(row.clean_accuracy)}</td>
              <td className="num">{percent(row.adversarial_accuracy)}</td>
              <td className="num">{percent(row.success_rate)}</td>
              <td className="num">{decimal(row.mean_l2)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function SetView({ job }: { job: Job }) {
  const result = job.result ?? {};
  const robustness = (result.robustness as RobustnessRow[] | undefined) ?? [];
  return (
    <>
      <p>
        {String(result.images ?? "?")} images; attacks {((result.attack_names as string[]) ?? []).join(", ")}.{" "}
        {job.artifacts.zip ? <a href={job.artifacts.zip}>Download the set (zip)</a> : null}
      </p>
      <RobustnessTable rows={robustness} />
      {job.artifacts.manifest ? (
        <Gallery jobId={job.id} manifestUrl={job.artifacts.manifest} />
      ) : (
        <p className="muted">This set has no manifest.</p>
      )}
    </>
  );
}

function SelectedSet({ jobId }: { jobId: string }) {
  const job = useJob(jobId);
  return (
    <>
      <JobTracker jobId={jobId} />
      {job.data?.state === "succeeded" ? <SetView job={job.data} /> : null}
    </>
  );
}

export function AttackLabPage() {
  const [search, setSearch] = useSearchParams();
  const setId = search.get("set") ?? undefined;
  const sets = useJobs({ type: "build_adversarial_set", limit: 50 });
  const show = (id: string) => setSearch({ set: id }, { replace: true });

  return (
    <Page
      title="Attack lab"
      intro="Attack a classifier on a dataset: every chosen attack at every budget, plus clean and noise controls. The result trains and tests detectors."
    >
      <Panel title="Build an adversarial set">
        <BuildForm onStarted={show} />
      </Panel>
      <Panel title="Adversarial set">
        <Field label="Set">
          <select value={setId ?? ""} onChange={(event) => event.target.value && show(event.target.value)}>
            <option value="">choose a set…</option>
            {(sets.data?.items ?? []).map((job) => (
              <option key={job.id} value={job.id}>
                {shortId(job.id)} — {(job.params.attacks as string[] | undefined)?.join(", ")} — {job.state} —{" "}
                {formatTime(job.created_at)}
              </option>
            ))}
          </select>
        </Field>
        <ErrorMessage error={sets.error} />
        {setId ? (
          <SelectedSet jobId={setId} />
        ) : (
          <p className="muted">Build a set above, or choose one built before.</p>
        )}
      </Panel>
    </Page>
  );
}
