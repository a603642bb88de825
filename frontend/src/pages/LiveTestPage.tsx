import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { Link } from "react-router";
import { attackImage, predictImages, type AttackResult } from "../api/client";
import { keys, useAttacks, useDetectors } from "../api/queries";
import { AttackSummary } from "../components/AttackSummary";
import { Field } from "../components/Field";
import { ErrorMessage } from "../components/ErrorMessage";
import { FileDrop } from "../components/FileDrop";
import { Page, Panel } from "../components/Page";
import { QueryAttacks } from "../components/QueryAttacks";
import { VerdictCard } from "../components/VerdictCard";
import { defaultAttacks, defaultBudget, normLabel, takesBudget } from "../lib/attacks";
import { useRememberedChoice } from "../lib/search";
import { BUDGET_SYNTAX, formatEps, parseBudget, percent, ranked, shortId } from "../lib/format";
import { namedAttack } from "../lib/verdict";

const PREVIEWABLE = /\.(png|jpe?g)$/i;

function usePreview(file: File | null): string | null {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!file || !PREVIEWABLE.test(file.name)) {
      setUrl(null);
      return;
    }
    const made = URL.createObjectURL(file);
    setUrl(made);
    return () => URL.revokeObjectURL(made);
  }, [file]);
  return url;
}

/** Attack parameters as "eps 8/255, alpha 2/255, steps 10". */
export function formatParams(params: Record<string, unknown>): string {
  return Object.entries(params)
    .map(([key, value]) =>
      typeof value === "number" && (key === "eps" || key === "alpha")
        ? `${key} ${formatEps(value)}`
        : `${key} ${String(value)}`,
    )
    .join(", ");
}

function topClass(probabilities: Record<string, number>): string {
  return ranked(probabilities)[0]?.[0] ?? "–";
}

function AttackOutcome({ result, preview }: { result: AttackResult; preview: string | null }) {
  const { original, adversarial } = result;
  const before = topClass(original.class_probabilities);
  const after = topClass(adversarial.class_probabilities);
  const caught = adversarial.is_adversarial;
  const attack = namedAttack(adversarial);
  return (
    <div className="attack-outcome" data-testid="attack-outcome">
      <p className={caught ? "success" : "warning"} role="status">
        {caught ? (
          <>
            The guard caught it:{" "}
            {attack.known ? (
              <>
                <strong className="caught-attack">{attack.name}</strong> ({percent(attack.probability)})
              </>
            ) : (
              <>unusual, like none of the attacks it knows (closest: {attack.name})</>
            )}
            , attacked with {result.attack}.
          </>
        ) : (
          <>The guard did not flag the {result.attack} image.</>
        )}{" "}
        The classifier alone would say {before} → {after}
        {before === after ? " (the attack did not flip it)" : ""}.
      </p>
      <div className="pair-images">
        {preview ? (
          <figure>
            <img src={preview} alt="the original image" className="pixelated" />
            <figcaption>original</figcaption>
          </figure>
        ) : null}
        <figure>
          <img
            src={`data:image/png;base64,${result.adversarial_png}`}
            alt={`the ${result.attack} image`}
            className="pixelated"
          />
          <figcaption>adversarial</figcaption>
        </figure>
        <figure>
          <img
            src={`data:image/png;base64,${result.perturbation_png}`}
            alt="the perturbation, amplified"
            className="pixelated"
          />
          <figcaption>perturbation (amplified)</figcaption>
        </figure>
      </div>
      <p className="muted small wrap-anywhere">
        L∞ {(result.linf * 255).toFixed(1)}/255 · L2 {result.l2.toFixed(3)} · {formatParams(result.params)}
      </p>
      <div className="verdicts">
        <VerdictCard verdict={original} title="Guard on the original" />
        <VerdictCard verdict={adversarial} title="Guard on the attacked image" />
      </div>
    </div>
  );
}

export function LiveTestPage() {
  const detectors = useDetectors();
  const [detectorId, setDetectorId] = useRememberedChoice("detector");
  const catalogue = useAttacks();
  const [file, setFile] = useState<File | null>(null);
  const [attackName, setAttackName] = useState("");
  // null until edited: then the chosen attack's default ε
  const [budgetInput, setBudgetInput] = useState<string | null>(null);
  const preview = usePreview(file);
  const chosen =
    (detectors.data?.some((detector) => detector.id === detectorId) ? detectorId : "") ||
    detectors.data?.[0]?.id ||
    "";
  const known = catalogue.data ?? [];
  const attack =
    known.find((item) => item.name === attackName) ??
    known.find((item) => item.name === defaultAttacks(known, ["pgd"])[0]);
  const budgeted = takesBudget(attack);
  const budgetText = budgetInput ?? formatEps(defaultBudget(attack) / 255);
  let budget: number | undefined;
  let budgetProblem = "";
  try {
    budget = budgeted ? parseBudget(budgetText) : undefined;
  } catch (error) {
    budgetProblem = error instanceof Error ? error.message : String(error);
  }

  const queryClient = useQueryClient();
  const predict = useMutation({
    mutationFn: (image: File) => predictImages([image], chosen || undefined),
    // every predict is a query the watch records: its list may have changed
    onSettled: () => queryClient.invalidateQueries({ queryKey: keys.queryAttacks }),
  });
  const attackRun = useMutation({
    mutationFn: () => attackImage(file!, attack!.name, budget, chosen || undefined),
  });

  const take = (image: File) => {
    setFile(image);
    attackRun.reset();
    predict.mutate(image);
  };
  const runAttack = (event: FormEvent) => {
    event.preventDefault();
    if (file && attack) attackRun.mutate();
  };
  const verdict = predict.data?.verdicts[0];

  return (
    <Page
      title="Live test"
      intro="Drop an image: a clean one gets the classifier's class; an adversarial one is rejected with the attack named."
    >
      {detectors.data && detectors.data.length === 0 ? (
        <p className="warning" role="status">
          No detector yet: <Link to="/detector">train one</Link> first.
        </p>
      ) : null}
      <ErrorMessage error={detectors.error} />
      <div className="columns">
        <Panel title="Image">
          <Field label="Detector">
            <select
              value={chosen}
              onChange={(event) => {
                setDetectorId(event.target.value);
                predict.reset();
                attackRun.reset();
              }}
            >
              {(detectors.data ?? []).map((detector) => (
                <option key={detector.id} value={detector.id}>
                  {detector.name} ({shortId(detector.id)})
                </option>
              ))}
            </select>
          </Field>
          <FileDrop
            label="Image (PNG, JPEG or DICOM)"
            accept=".png,.jpg,.jpeg,.dcm,.dicom,image/png,image/jpeg,application/dicom"
            hint="Drop an image here or choose one; it is tested at once"
            onFiles={([image]) => image && take(image)}
          />
          {preview ? <img src={preview} alt="the image being tested" className="pixelated preview" /> : null}
          {predict.isPending ? (
            <p className="muted" role="status">
              Asking the guard…
            </p>
          ) : null}
          <ErrorMessage title="Prediction failed" error={predict.error} />
          {verdict ? <VerdictCard verdict={verdict} title={`Verdict on ${verdict.file}`} /> : null}
        </Panel>
        <Panel title="Attack this image">
          <form className="form" onSubmit={runAttack} aria-label="Attack this image">
            <p className="muted">
              Attacks the image against the guard&apos;s own classifier, then asks the guard about the result.
            </p>
            <div className="field-row">
              <Field label="Attack">
                <select value={attack?.name ?? ""} onChange={(event) => setAttackName(event.target.value)}>
                  {known.length === 0 ? (
                    <option value="">{catalogue.isPending ? "loading the attacks…" : "no attacks"}</option>
                  ) : null}
                  {known.map((item) => (
                    <option key={item.name} value={item.name}>
                      {item.name.toUpperCase()} ({normLabel(item.norm)}
                      {takesBudget(item) ? "" : ", no ε"})
                    </option>
                  ))}
                </select>
              </Field>
              <Field
                label="Budget ε"
                hint={
                  attack && !budgeted
                    ? `${attack.name.toUpperCase()} is an ${normLabel(attack.norm)} attack: it runs at its defaults, without ε`
                    : budgetProblem ||
                      `Write ${BUDGET_SYNTAX}${budget === undefined ? "" : `: ε = ${formatEps(budget)}`}`
                }
              >
                <input
                  value={budgetText}
                  inputMode="decimal"
                  disabled={!budgeted}
                  onChange={(event) => setBudgetInput(event.target.value)}
                  required={budgeted}
                  aria-invalid={budgetProblem ? true : undefined}
                />
              </Field>
            </div>
            {attack ? (
              <p className="small">
                <AttackSummary summary={attack.summary} />
              </p>
            ) : null}
            <ErrorMessage title="Could not list the attacks" error={catalogue.error} />
            <div className="actions">
              <button
                type="submit"
                disabled={!file || !attack || attackRun.isPending || !chosen || Boolean(budgetProblem)}
              >
                {attackRun.isPending ? "Attacking…" : "Attack this image"}
              </button>
            </div>
            {!file ? <p className="muted small">Choose an image first.</p> : null}
            <ErrorMessage title="Attack failed" error={attackRun.error} />
          </form>
          {attackRun.data ? <AttackOutcome result={attackRun.data} preview={preview} /> : null}
        </Panel>
      </div>
      <Panel title="Query attacks">
        <QueryAttacks />
      </Panel>
    </Page>
  );
}
