import { useEffect, useRef, useState, type FormEvent } from "react";
import { isJobOf, type DetectorDetail } from "../api/client";
import {
  useCreateJob,
  useDeleteDetector,
  useDetector,
  useDetectors,
  useJob,
  useJobs,
  useModels,
} from "../api/queries";
import { AurocChart } from "../components/AurocChart";
import { AurocTable, UnseenTable } from "../components/AurocTable";
import { ConfusionHeatmap } from "../components/ConfusionHeatmap";
import { RocCharts } from "../components/RocChart";
import { Field, NumberInput } from "../components/Field";
import { EditableName } from "../components/EditableName";
import { ErrorMessage } from "../components/ErrorMessage";
import { JobTracker } from "../components/JobProgress";
import { Page, Panel } from "../components/Page";
import { SubmitJob } from "../components/SubmitJob";
import { decimal, formatTime, percent, shortId } from "../lib/format";
import { rocScorers, type DetectionReport } from "../lib/report";
import { useSearchState } from "../lib/search";

function TrainDetector({ onStarted }: { onStarted: (jobId: string) => void }) {
  const sets = useJobs({ type: "build_adversarial_set", state: "succeeded", limit: 50 });
  const create = useCreateJob();
  const [setJobId, setSetJobId] = useState("");
  const [name, setName] = useState("");
  const [epochs, setEpochs] = useState(150);
  const [falseRejection, setFalseRejection] = useState(2);
  const chosen = setJobId || sets.data?.items[0]?.id || "";

  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate(
      {
        type: "train_detector",
        set_job_id: chosen,
        name: name.trim() || null,
        epochs,
        target_false_rejection: falseRejection / 100,
      },
      { onSuccess: (job) => onStarted(job.id) },
    );
  };

  return (
    <form className="form" onSubmit={submit} aria-label="Train a detector">
      <Field label="Adversarial set">
        <select value={chosen} onChange={(event) => setSetJobId(event.target.value)}>
          {(sets.data?.items ?? []).length === 0 ? (
            <option value="">no finished sets: build one in the attack lab</option>
          ) : null}
          {(sets.data?.items ?? []).map((job) => (
            <option key={job.id} value={job.id}>
              {job.name} — {formatTime(job.finished_at)}
            </option>
          ))}
        </select>
      </Field>
      <Field label="Name (optional)">
        <input value={name} onChange={(event) => setName(event.target.value)} maxLength={200} />
      </Field>
      <div className="field-row">
        <Field label="Epochs">
          <NumberInput min={1} max={2000} value={epochs} onChange={setEpochs} />
        </Field>
        <Field label="Clean images wrongly rejected, target (%)">
          <NumberInput min={0.1} max={50} step={0.1} value={falseRejection} onChange={setFalseRejection} />
        </Field>
      </div>
      <SubmitJob
        label="Train detector"
        disabled={create.isPending || !chosen}
        startError={create.error}
        loadError={sets.error}
      />
    </form>
  );
}

/** Once the tracked training job succeeds, show its detector. */
function FollowTraining({ jobId, onDetector }: { jobId: string; onDetector: (id: string) => void }) {
  const job = useJob(jobId).data;
  const detectorId =
    job?.state === "succeeded" && isJobOf(job, "train_detector") ? job.result?.detector_id : undefined;
  const announced = useRef<string | undefined>(undefined);
  useEffect(() => {
    if (detectorId && announced.current !== detectorId) {
      announced.current = detectorId;
      onDetector(detectorId);
    }
  }, [detectorId, onDetector]);
  return <JobTracker jobId={jobId} />;
}

function Evaluate({ detector }: { detector: DetectorDetail }) {
  const create = useCreateJob();
  const [baselines, setBaselines] = useState(true);
  const [leaveOneOut, setLeaveOneOut] = useState(true);
  const [jobId, setJobId] = useState<string | null>(null);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate(
      { type: "evaluate", detector_id: detector.id, baselines, leave_one_out: leaveOneOut },
      { onSuccess: (job) => setJobId(job.id) },
    );
  };
  return (
    <form className="form" onSubmit={submit} aria-label="Evaluate the detector">
      <div className="checks">
        <label className="check">
          <input
            type="checkbox"
            checked={baselines}
            onChange={(event) => setBaselines(event.target.checked)}
          />
          compare with baselines (feature squeezing, Mahalanobis)
        </label>
        <label className="check">
          <input
            type="checkbox"
            checked={leaveOneOut}
            onChange={(event) => setLeaveOneOut(event.target.checked)}
          />
          leave-one-attack-out (retrains the detector without each attack in turn; slower)
        </label>
      </div>
      <div className="actions">
        <button type="submit" disabled={create.isPending}>
          {detector.report ? "Evaluate again" : "Evaluate (write the report)"}
        </button>
      </div>
      <ErrorMessage title="Could not start the evaluation" error={create.error} />
      {jobId ? <JobTracker jobId={jobId} /> : null}
    </form>
  );
}

function ReportView({ report, artifacts }: { report: DetectionReport; artifacts: Record<string, string> }) {
  const noise = Object.entries(report.noise_false_rejection);
  return (
    <div className="report" data-testid="report">
      <dl className="stats">
        <div>
          <dt>Clean test images wrongly rejected</dt>
          <dd>{percent(report.clean_false_rejection)}</dd>
        </div>
        <div>
          <dt>Clean images accepted and correctly classified</dt>
          <dd>{percent(report.guard_accuracy_clean)}</dd>
        </div>
        <div>
          <dt>Attack named correctly (successful attacks)</dt>
          <dd>{percent(report.naming_accuracy)}</dd>
        </div>
        <div>
          <dt>Attack family named correctly</dt>
          <dd>{percent(report.family_accuracy)}</dd>
        </div>
        <div>
          <dt>Threshold</dt>
          <dd>{decimal(report.threshold, 4)}</dd>
        </div>
        <div>
          <dt>Clean test images</dt>
          <dd>{report.clean_images}</dd>
        </div>
      </dl>
      {noise.length > 0 ? (
        <p className="muted small">
          Controls labelled clean that were rejected:{" "}
          {noise.map(([kind, rate]) => `${kind} ${percent(rate)}`).join(", ")}.
        </p>
      ) : null}
      <h3>AUROC per attack and budget</h3>
      <AurocChart rows={report.rows} />
      <AurocTable rows={report.rows} />
      <h3>Attacks it never saw</h3>
      <UnseenTable rows={report.unseen} />
      <div className="table-wrap">
        <table className="data">
          <caption>Per attack, all budgets together</caption>
          <thead>
            <tr>
              <th scope="col">attack</th>
              <th scope="col" className="num">
                AUROC
              </th>
              <th scope="col" className="num">
                left out: AUROC
              </th>
              <th scope="col" className="num">
                left out: AUROC successful
              </th>
              <th scope="col" className="num">
                left out: detected
              </th>
            </tr>
          </thead>
          <tbody>
            {report.attack_names.map((name) => {
              const left = report.leave_one_out.find((row) => row.attack === name);
              return (
                <tr key={name}>
                  <th scope="row">{name}</th>
                  <td className="num">{decimal(report.per_attack_auroc[name])}</td>
                  <td className="num">{decimal(left?.auroc)}</td>
                  <td className="num">{decimal(left?.auroc_successful)}</td>
                  <td className="num">{percent(left?.tpr_successful)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <p className="muted small">
        <em>Left out</em>: a detector retrained without that attack, judged on it, as if it were new
        (detected: successful attacks rejected at that detector's own threshold).
      </p>
      <h3>ROC curves</h3>
      <RocCharts curves={report.roc_curves} attackNames={report.attack_names} />
      <p className="muted small">
        {rocScorers(report.roc_curves).length > 0
          ? "One line per attack (all its budgets together) against the clean test images; the dashed diagonal is chance. The legends give each curve's AUROC, the tables above AUROC per budget. "
          : null}
        {artifacts["roc.png"] ? (
          <a href={artifacts["roc.png"]} download>
            Download the ROC plot (roc.png)
          </a>
        ) : null}
      </p>
      <h3>What the guard answered</h3>
      <ConfusionHeatmap
        labels={report.confusion_labels}
        matrix={report.guard_confusion}
        title="Guard answers: true image (rows) against the guard's answer (columns)"
        rowsTitle="true"
        columnsTitle="guard answered"
        caption="Clean test images and successful attacks on the test split (rows), against the guard's answer (columns): clean means accepted, an attack name means rejected as that attack. The clean row's off-diagonal cells are clean scans wrongly rejected; the clean column's are attacks that got through."
      />
      {artifacts["examples.png"] ? (
        <>
          <h3>Examples</h3>
          <img
            className="plot"
            src={artifacts["examples.png"]}
            alt="One successful attack per attack type: clean, adversarial, perturbation"
          />
        </>
      ) : null}
      <p className="small">
        {artifacts["report.md"] ? <a href={artifacts["report.md"]}>report.md</a> : null}{" "}
        {artifacts["report.json"] ? <a href={artifacts["report.json"]}>report.json</a> : null}
      </p>
    </div>
  );
}

function DetectorView({ id, onDeleted }: { id: string; onDeleted: () => void }) {
  const detector = useDetector(id);
  const remove = useDeleteDetector();
  const models = useModels().data;
  const set = useJob(detector.data?.set_job_id).data;
  if (detector.error) return <ErrorMessage error={detector.error} />;
  if (!detector.data) return <p className="muted">Loading the detector…</p>;
  const data = detector.data;
  const report = data.report;
  return (
    <>
      <p>
        <EditableName kind="detector" id={data.id} name={data.name} />: guards the model{" "}
        <strong>{models?.find((model) => model.id === data.model_id)?.name ?? shortId(data.model_id)}</strong>{" "}
        against {data.attack_names.join(", ")}; trained on the set{" "}
        <strong>{set?.name ?? shortId(data.set_job_id)}</strong>, {formatTime(data.created_at)}.{" "}
        <button
          type="button"
          className="danger"
          disabled={remove.isPending}
          onClick={() =>
            window.confirm(`Delete the detector ${data.name}?`) && remove.mutate(id, { onSuccess: onDeleted })
          }
        >
          Delete detector
        </button>
      </p>
      <ErrorMessage title="Delete failed" error={remove.error} />
      <p>
        <a href={`/api/v1/detectors/${encodeURIComponent(data.id)}/export`} download>
          Download the guard as one TorchScript file
        </a>{" "}
        <span className="muted">
          (classifier and detector together; runs with plain PyTorch:{" "}
          <code>torch.jit.load(path)(images)</code> inside <code>torch.enable_grad()</code> gives the class
          probabilities, the score, the verdict and the attack probabilities)
        </span>
      </p>
      <Evaluate detector={data} />
      {report ? (
        <ReportView report={report} artifacts={data.report_artifacts} />
      ) : data.report ? (
        <ErrorMessage error="the report has an unexpected shape; see report.json" />
      ) : (
        <p className="muted">No report yet: evaluate the detector to write one.</p>
      )}
    </>
  );
}

export function DetectorPage() {
  const detectors = useDetectors();
  const [search, update] = useSearchState();
  const chosen = search.get("id") ?? detectors.data?.[0]?.id;
  const trainJob = search.get("job") ?? undefined;

  return (
    <Page
      title="Detector"
      intro="A detector sits in front of the classifier: it rejects adversarial images and names the attack. Train one on an adversarial set, then evaluate it."
    >
      <Panel title="Train a detector">
        <TrainDetector onStarted={(job) => update({ job })} />
        {trainJob ? <FollowTraining jobId={trainJob} onDetector={(id) => update({ id })} /> : null}
      </Panel>
      <Panel title="Report">
        <ErrorMessage error={detectors.error} />
        {detectors.data && detectors.data.length === 0 ? <p className="muted">No detectors yet.</p> : null}
        {detectors.data && detectors.data.length > 0 ? (
          <Field label="Detector">
            <select value={chosen ?? ""} onChange={(event) => update({ id: event.target.value })}>
              {detectors.data.map((detector) => (
                <option key={detector.id} value={detector.id}>
                  {detector.name} ({shortId(detector.id)}){detector.report_job_id ? "" : " — no report"}
                </option>
              ))}
            </select>
          </Field>
        ) : null}
        {chosen ? <DetectorView id={chosen} onDeleted={() => update({ id: undefined })} /> : null}
      </Panel>
    </Page>
  );
}
