import { useState } from "react";
import { Link } from "react-router";
import type { Job, JobState, JobType } from "../api/client";
import { isActive, useCancelJob, useJobs } from "../api/queries";
import { Field } from "../components/Field";
import { EditableName } from "../components/EditableName";
import { ErrorMessage } from "../components/ErrorMessage";
import {
  JOB_TYPE_NAMES,
  jobTypeName,
  progressText,
  progressValue,
  StateBadge,
} from "../components/JobProgress";
import { Page, Panel } from "../components/Page";
import { ProgressBar } from "../components/ProgressBar";
import { duration, formatTime, percent } from "../lib/format";
import { budgetLabel, NO_DEFENSE } from "../lib/robustness";

const TYPES = Object.keys(JOB_TYPE_NAMES).filter(isJobType);
const STATES: JobState[] = ["queued", "running", "succeeded", "failed", "cancelled"];
const PAGE_SIZE = 25;

function isJobType(name: string): name is JobType {
  return name in JOB_TYPE_NAMES;
}

function isJobState(name: string): name is JobState {
  return STATES.some((state) => state === name);
}

/** Reached only when a job type has no case above: the build fails until it has one. */
function unhandled(job: never): never {
  throw new Error(`no view for job ${JSON.stringify(job)}`);
}

/** Where the thing a job made (or reads) is shown. */
function jobLink(job: Job): { to: string; text: string } | null {
  switch (job.type) {
    case "train_classifier":
      return { to: `/models?job=${job.id}`, text: "model" };
    case "build_adversarial_set":
      return { to: `/attack?set=${job.id}`, text: "gallery" };
    case "train_detector":
      return job.result ? { to: `/detector?id=${job.result.detector_id}`, text: "detector" } : null;
    case "evaluate":
      return { to: `/detector?id=${job.params.detector_id}`, text: "report" };
    case "evaluate_robustness":
      return { to: `/robustness?job=${job.id}`, text: "curves" };
    case "model_report":
      return { to: `/robustness?report=${job.id}`, text: "report" };
    case "adversarial_training":
      return { to: `/robustness?training=${job.id}`, text: "comparison" };
    default:
      return unhandled(job);
  }
}

/** One line on what a succeeded job found. */
function summary(job: Job): string {
  if (!job.result) return "";
  switch (job.type) {
    case "train_classifier":
    case "adversarial_training":
      return `test accuracy ${percent(job.result.test_accuracy)}`;
    case "build_adversarial_set":
      return `${job.result.images} images`;
    case "train_detector":
      return `threshold ${job.result.threshold.toFixed(3)}`;
    case "evaluate":
      return `clean rejections ${percent(job.result.report.clean_false_rejection)}`;
    case "evaluate_robustness": {
      const { epsilons, worst_case } = job.result.robustness;
      const last = epsilons.at(-1);
      return last === undefined
        ? ""
        : `worst case ${percent(worst_case[NO_DEFENSE]?.at(-1))} at ε ${budgetLabel(last)}`;
    }
    case "model_report":
      return `clean accuracy ${percent(job.result.clean_accuracy)}`;
    default:
      return unhandled(job);
  }
}

function JobRow({ job }: { job: Job }) {
  const cancel = useCancelJob();
  const link = jobLink(job);
  const { stage, done, total } = job.progress;
  return (
    <tr data-job-id={job.id} data-state={job.state}>
      <th scope="row">
        <EditableName kind="job" id={job.id} name={job.name} />
        <br />
        <span className="muted small">{jobTypeName(job.type)}</span>
      </th>
      <td>
        <StateBadge state={job.state} />
        {job.attempts > 1 ? <span className="muted small"> attempt {job.attempts}</span> : null}
      </td>
      <td className="progress-cell">
        {job.state === "failed" || job.state === "cancelled" ? (
          <span className="muted small">
            {stage ? `stopped at ${stage}${total ? ` (${done} / ${total})` : ""}` : "–"}
          </span>
        ) : (
          <>
            <ProgressBar label={`${job.name} progress`} value={progressValue(job)} />
            <span className="muted small">{progressText(job)}</span>
          </>
        )}
      </td>
      <td>
        {formatTime(job.created_at)}
        <br />
        <span className="muted small">{duration(job.started_at, job.finished_at)}</span>
      </td>
      <td className="job-detail">
        {job.error ? <pre className="job-error">{job.error}</pre> : null}
        {summary(job)}
        {Object.keys(job.artifacts).length > 0 ? (
          <span className="small artifacts">
            {Object.entries(job.artifacts).map(([name, url]) => (
              <a key={name} href={url}>
                {name}
              </a>
            ))}
          </span>
        ) : null}
        <ErrorMessage title="Cancel failed" error={cancel.error} />
      </td>
      <td className="row-actions">
        {isActive(job.state) ? (
          <button
            type="button"
            className="secondary"
            onClick={() => cancel.mutate(job.id)}
            disabled={cancel.isPending}
            aria-label={`Cancel ${job.name}`}
          >
            Cancel
          </button>
        ) : null}
        {link && job.state === "succeeded" ? (
          <Link to={link.to} className="button secondary">
            Open {link.text}
          </Link>
        ) : null}
      </td>
    </tr>
  );
}

export function JobsPage() {
  const [type, setType] = useState<JobType | "">("");
  const [state, setState] = useState<JobState | "">("");
  const [offset, setOffset] = useState(0);
  const jobs = useJobs({
    type: type || undefined,
    state: state || undefined,
    limit: PAGE_SIZE,
    offset,
  });
  const total = jobs.data?.total ?? 0;

  return (
    <Page title="Jobs" intro="Every job with its state and progress, refreshed while any is running.">
      <Panel title="Filter">
        <div className="field-row">
          <Field label="Type">
            <select
              value={type}
              onChange={(event) => {
                const value = event.target.value;
                setType(isJobType(value) ? value : "");
                setOffset(0);
              }}
            >
              <option value="">all types</option>
              {TYPES.map((name) => (
                <option key={name} value={name}>
                  {jobTypeName(name)}
                </option>
              ))}
            </select>
          </Field>
          <Field label="State">
            <select
              value={state}
              onChange={(event) => {
                const value = event.target.value;
                setState(isJobState(value) ? value : "");
                setOffset(0);
              }}
            >
              <option value="">all states</option>
              {STATES.map((name) => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
            </select>
          </Field>
        </div>
      </Panel>
      <Panel title="Jobs list" id="jobs-list">
        <ErrorMessage error={jobs.error} />
        {jobs.data && jobs.data.items.length === 0 ? <p className="muted">No jobs.</p> : null}
        {jobs.data && jobs.data.items.length > 0 ? (
          <div className="table-wrap">
            <table className="data jobs">
              <thead>
                <tr>
                  <th scope="col">job</th>
                  <th scope="col">state</th>
                  <th scope="col">progress</th>
                  <th scope="col">created · took</th>
                  <th scope="col">result or error</th>
                  <th scope="col">
                    <span className="visually-hidden">actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {jobs.data.items.map((job) => (
                  <JobRow key={job.id} job={job} />
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
        {total > PAGE_SIZE ? (
          <div className="actions">
            <button
              type="button"
              className="secondary"
              disabled={offset === 0}
              onClick={() => setOffset(Math.max(0, offset - PAGE_SIZE))}
            >
              Newer
            </button>
            <span className="muted small">
              {offset + 1}–{Math.min(total, offset + PAGE_SIZE)} of {total}
            </span>
            <button
              type="button"
              className="secondary"
              disabled={offset + PAGE_SIZE >= total}
              onClick={() => setOffset(offset + PAGE_SIZE)}
            >
              Older
            </button>
          </div>
        ) : null}
      </Panel>
    </Page>
  );
}
