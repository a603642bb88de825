import { useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router";
import { isJobOf, uploadModel } from "../api/client";
import { TrainingReport } from "../components/TrainingReport";
import { chanceWarning } from "../lib/training";
import { keys, useCreateJob, useDatasets, useDeleteModel, useJob, useModels } from "../api/queries";
import { Field, NumberInput } from "../components/Field";
import { EditableName } from "../components/EditableName";
import { ErrorMessage } from "../components/ErrorMessage";
import { FileDrop } from "../components/FileDrop";
import { JobTracker } from "../components/JobProgress";
import { Page, Panel } from "../components/Page";
import { ProgressBar } from "../components/ProgressBar";
import { SubmitJob } from "../components/SubmitJob";
import { formatTime, percent, shortId } from "../lib/format";

function TrainClassifier({ onStarted }: { onStarted: (jobId: string) => void }) {
  const datasets = useDatasets();
  const create = useCreateJob();
  const [datasetId, setDatasetId] = useState("");
  const [name, setName] = useState("");
  const [epochs, setEpochs] = useState(50);
  const chosen = datasetId || datasets.data?.at(-1)?.id || "bundled";

  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate(
      {
        type: "train_classifier",
        dataset_id: chosen,
        name: name.trim() || null,
        epochs,
      },
      { onSuccess: (job) => onStarted(job.id) },
    );
  };

  return (
    <form className="form" onSubmit={submit} aria-label="Train the built-in classifier">
      <p className="muted">
        The built-in classifier is advguard&apos;s small CNN. It is trained on the dataset&apos;s train split
        and tested on its test split, as a job on the workers. A fifth of the train split is held out: it
        validates each epoch, and detectors built for this model learn on it, images the model never saw. The
        moving average of the weights is kept, not one epoch&apos;s.
      </p>
      <Field label="Dataset">
        <select value={chosen} onChange={(event) => setDatasetId(event.target.value)}>
          {(datasets.data ?? []).map((dataset) => (
            <option key={dataset.id} value={dataset.id}>
              {dataset.name}
            </option>
          ))}
        </select>
      </Field>
      <Field label="Name (optional)">
        <input value={name} onChange={(event) => setName(event.target.value)} maxLength={200} />
      </Field>
      <Field label="Epochs">
        <NumberInput min={1} max={500} value={epochs} onChange={setEpochs} />
      </Field>
      <SubmitJob
        label="Train classifier"
        disabled={create.isPending}
        startError={create.error}
        loadError={datasets.error}
      />
    </form>
  );
}

function TrainedSummary({ jobId }: { jobId: string }) {
  const job = useJob(jobId).data;
  const models = useModels().data;
  const result = job?.state === "succeeded" && isJobOf(job, "train_classifier") ? job.result : null;
  if (!result) return null;
  const model = models?.find((candidate) => candidate.id === result.model_id);
  return (
    <>
      <p className={chanceWarning(result) ? "muted" : "success"} role="status">
        Test accuracy <strong>{percent(result.test_accuracy)}</strong> for the new model{" "}
        {model ? (
          <EditableName kind="model" id={model.id} name={model.name} />
        ) : (
          <code>{shortId(result.model_id)}</code>
        )}
        . <Link to={`/attack?model=${result.model_id}`}>Attack it in the attack lab</Link>
      </p>
      <TrainingReport summary={result} />
    </>
  );
}

function UploadModel() {
  const client = useQueryClient();
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState("");
  const [spec, setSpec] = useState("");
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  const [uploads, setUploads] = useState(0);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!file) return;
    setError(null);
    setDone(null);
    if (spec.trim()) {
      try {
        JSON.parse(spec);
      } catch (problem) {
        setError(`the model description is not valid JSON: ${(problem as Error).message}`);
        return;
      }
    }
    setProgress(0);
    try {
      const model = await uploadModel(file, name, spec, setProgress);
      void client.invalidateQueries({ queryKey: keys.models });
      setDone(`Uploaded ${model.name} (${model.class_names.join(", ")}).`);
      setFile(null);
      setUploads((count) => count + 1);
    } catch (problem) {
      setError(problem);
    } finally {
      setProgress(null);
    }
  };

  return (
    <form className="form" onSubmit={submit} aria-label="Upload a classifier">
      <p className="muted">
        A TorchScript archive (<code>torch.jit.save</code>), an ONNX model (converted to differentiable
        PyTorch on upload; export it with a dynamic batch axis), or <code>safetensors</code> weights of the
        built-in architecture with its description. Pickles are refused.
      </p>
      <FileDrop
        label="Model file"
        accept=".pt,.pth,.ts,.zip,.jit,.onnx,.safetensors"
        key={uploads}
        hint="Drop the model file here or choose one"
        onFiles={([chosen]) => setFile(chosen ?? null)}
        disabled={progress !== null}
      />
      <Field
        label="Model description (JSON)"
        hint="class_names, in_channels, image_size, …; needed for ONNX and safetensors, optional for TorchScript"
      >
        <textarea
          rows={3}
          value={spec}
          onChange={(event) => setSpec(event.target.value)}
          placeholder='{"class_names": ["glioma", "healthy"], "in_channels": 1, "image_size": 128}'
        />
      </Field>
      <Field label="Name (optional)">
        <input value={name} onChange={(event) => setName(event.target.value)} maxLength={200} />
      </Field>
      <div className="actions">
        <button type="submit" disabled={!file || progress !== null}>
          Upload model
        </button>
      </div>
      {progress !== null ? (
        <div aria-live="polite">
          <ProgressBar label="Model upload progress" value={progress < 1 ? progress : undefined} />
          <p className="muted small">
            {progress < 1 ? "Uploading…" : "Uploaded; the server is checking the model…"}
          </p>
        </div>
      ) : null}
      {done ? (
        <p className="success" role="status">
          {done}
        </p>
      ) : null}
      <ErrorMessage title="Upload failed" error={error} />
    </form>
  );
}

export function ModelsPage() {
  const models = useModels();
  const remove = useDeleteModel();
  const [search, setSearch] = useSearchParams();
  const jobId = search.get("job") ?? undefined;
  const selected = search.get("id") ?? undefined;

  return (
    <Page
      title="Models"
      intro="Classifiers to attack and to guard: train the built-in one, or upload your own."
    >
      <div className="columns">
        <Panel title="Train the built-in classifier">
          <TrainClassifier onStarted={(id) => setSearch({ job: id }, { replace: true })} />
          {jobId ? (
            <div className="tracked">
              <JobTracker jobId={jobId} />
              <TrainedSummary jobId={jobId} />
            </div>
          ) : null}
        </Panel>
        <Panel title="Upload a classifier">
          <UploadModel />
        </Panel>
      </div>
      <Panel title="All models">
        <ErrorMessage error={models.error} />
        <ErrorMessage title="Delete failed" error={remove.error} />
        {models.data && models.data.length === 0 ? <p className="muted">No models yet.</p> : null}
        {models.data && models.data.length > 0 ? (
          <div className="table-wrap">
            <table className="data">
              <thead>
                <tr>
                  <th scope="col">name</th>
                  <th scope="col">origin</th>
                  <th scope="col">classes</th>
                  <th scope="col">input</th>
                  <th scope="col" className="num">
                    test accuracy
                  </th>
                  <th scope="col">added</th>
                  <th scope="col">
                    <span className="visually-hidden">actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {models.data.map((model) => (
                  <tr key={model.id} aria-selected={model.id === selected}>
                    <th scope="row">
                      <EditableName kind="model" id={model.id} name={model.name} />
                    </th>
                    <td>{model.origin}</td>
                    <td>{model.class_names.join(", ")}</td>
                    <td>
                      {model.image_size}×{model.image_size}×{model.channels}
                    </td>
                    <td className="num">
                      {typeof model.metrics.test_accuracy === "number"
                        ? percent(model.metrics.test_accuracy)
                        : "–"}
                    </td>
                    <td>{formatTime(model.created_at)}</td>
                    <td className="row-actions">
                      <Link to={`/attack?model=${model.id}`} className="button secondary">
                        Attack
                      </Link>
                      <button
                        type="button"
                        className="danger"
                        aria-label={`Delete ${model.name}`}
                        disabled={remove.isPending}
                        onClick={() =>
                          window.confirm(`Delete the model ${model.name}?`) && remove.mutate(model.id)
                        }
                      >
                        Delete
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Panel>
    </Page>
  );
}
