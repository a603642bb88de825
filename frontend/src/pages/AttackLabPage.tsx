import { useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import type { AttackInfo, JobOf } from "../api/client";
import type { components } from "../api/schema";
import { useCreateJob, useJobs } from "../api/queries";
import { AttackChecks, useAttackChoice } from "../components/AttackChecks";
import { Field, NumberInput } from "../components/Field";
import { ErrorMessage } from "../components/ErrorMessage";
import { Gallery } from "../components/Gallery";
import { JobResult } from "../components/JobProgress";
import { ModelDatasetFields, useModelDataset } from "../components/ModelDatasetFields";
import { Page, Panel } from "../components/Page";
import { SubmitJob } from "../components/SubmitJob";
import { normLabel, takesBudget } from "../lib/attacks";
import { remember, remembered } from "../lib/search";
import {
  BUDGET_SYNTAX,
  budgetEcho,
  decimal,
  formatEps,
  formatTime,
  parseBudgets,
  percent,
} from "../lib/format";

/** One attack at one budget of a set (``eps`` null for L2 attacks such as CW). */
type RobustnessRow = components["schemas"]["RobustnessRow"];

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
  const choice = useModelDataset({ initialModelId: search.get("model") ?? "" });
  const attacks = useAttackChoice(["fgsm", "pgd"]);
  const create = useCreateJob();
  const [budgets, setBudgets] = useState("2/255, 4/255, 8/255");
  const [fraction, setFraction] = useState(0.3);
  const [problem, setProblem] = useState<string | null>(null);

  const { model } = choice;
  const { known, chosen } = attacks;
  const needsBudgets = known.some((attack) => chosen.includes(attack.name) && takesBudget(attack));

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setProblem(null);
    if (!model) return setProblem("upload or train a model first");
    if (chosen.length === 0) return setProblem("choose at least one attack");
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
        dataset_id: choice.datasetId,
        model_id: model.id,
        attacks: chosen,
        ...(eps ? { eps } : {}),
        fraction,
      },
      { onSuccess: (job) => onStarted(job.id) },
    );
  };

  return (
    <form className="form" onSubmit={submit} aria-label="Build an adversarial set">
      <ModelDatasetFields choice={choice} />
      <AttackChecks choice={attacks} markNoBudget />
      <div className="field-row">
        <Field
          label="Budgets ε (comma-separated)"
          hint={[budgetHint(known), `Write ${BUDGET_SYNTAX}`, budgetEcho(budgets)].filter(Boolean).join(". ")}
        >
          <input
            value={budgets}
            onChange={(event) => setBudgets(event.target.value)}
            inputMode="decimal"
            disabled={!needsBudgets}
            required={needsBudgets}
          />
        </Field>
        <Field label="Share of images attacked per attack and ε">
          <NumberInput min={0.01} max={1} step={0.01} value={fraction} onChange={setFraction} />
        </Field>
      </div>
      <SubmitJob
        label="Build adversarial set"
        disabled={create.isPending || !model || attacks.known.length === 0}
        problem={problem}
        startError={create.error}
        loadError={choice.error}
      />
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

function SetView({ job }: { job: JobOf<"build_adversarial_set"> }) {
  const result = job.result;
  return (
    <>
      <p>
        {result?.images ?? "?"} images; attacks {(result?.attack_names ?? []).join(", ")}.{" "}
        {job.artifacts.zip ? <a href={job.artifacts.zip}>Download the set (zip)</a> : null}
      </p>
      <RobustnessTable rows={result?.robustness ?? []} />
      {job.artifacts.manifest ? (
        <Gallery jobId={job.id} manifestUrl={job.artifacts.manifest} />
      ) : (
        <p className="muted">This set has no manifest.</p>
      )}
    </>
  );
}

export function AttackLabPage() {
  const [search, setSearch] = useSearchParams();
  // The set in the address, else the one looked at last in this browser.
  const setId = search.get("set") ?? (remembered("set") || undefined);
  const sets = useJobs({ type: "build_adversarial_set", limit: 50 });
  const show = (id: string) => {
    remember("set", id);
    setSearch({ set: id }, { replace: true });
  };

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
                {job.name} — {job.state} — {formatTime(job.created_at)}
              </option>
            ))}
          </select>
        </Field>
        <ErrorMessage error={sets.error} />
        {setId ? (
          <JobResult jobId={setId} type="build_adversarial_set">
            {(job) => <SetView job={job} />}
          </JobResult>
        ) : (
          <p className="muted">Build a set above, or choose one built before.</p>
        )}
      </Panel>
    </Page>
  );
}
