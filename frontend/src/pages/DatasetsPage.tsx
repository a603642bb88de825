import { useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { uploadDataset, type Dataset, type DatasetDetail } from "../api/client";
import { rememberDataset, useDataset, useDatasets, useDeleteDataset } from "../api/queries";
import { Field } from "../components/Field";
import { EditableName } from "../components/EditableName";
import { ErrorMessage } from "../components/ErrorMessage";
import { FileDrop } from "../components/FileDrop";
import { Page, Panel } from "../components/Page";
import { ProgressBar } from "../components/ProgressBar";
import { formatTime } from "../lib/format";

function imageCount(dataset: Dataset): number {
  return Object.values(dataset.counts).reduce(
    (sum, perClass) => sum + Object.values(perClass).reduce((a, b) => a + b, 0),
    0,
  );
}

function UploadDataset({ onUploaded }: { onUploaded: (dataset: DatasetDetail) => void }) {
  const client = useQueryClient();
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState("");
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [uploads, setUploads] = useState(0);
  const busy = progress !== null;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!file) {
      setError("choose a zip file first");
      return;
    }
    setError(null);
    setProgress(0);
    try {
      const dataset = await uploadDataset(file, name, setProgress);
      rememberDataset(client, dataset);
      setFile(null);
      setName("");
      setUploads((count) => count + 1);
      onUploaded(dataset);
    } catch (problem) {
      setError(problem);
    } finally {
      setProgress(null);
    }
  };

  return (
    <form onSubmit={submit} className="form" aria-label="Upload a dataset">
      <p className="muted">
        A zip with one folder per class (<code>class/image.png</code>), or split folders (
        <code>train/class/…</code>, <code>test/class/…</code>). PNG, JPEG or DICOM (<code>.dcm</code>) images,
        or NIfTI volumes (<code>.nii.gz</code>: one image per non-empty slice, each volume windowed to its own
        intensity range); unreadable files are listed, not fatal. Sizes may differ (padded to square and
        resized); colour and grey scans may not be mixed.
      </p>
      <FileDrop
        label="Dataset zip"
        accept=".zip,application/zip"
        key={uploads}
        hint={file ? `${(file.size / 1024).toFixed(0)} KiB` : "Drop a zip here or choose one"}
        onFiles={([chosen]) => setFile(chosen ?? null)}
        disabled={busy}
      />
      <Field label="Name (optional)">
        <input
          value={name}
          onChange={(event) => setName(event.target.value)}
          maxLength={200}
          disabled={busy}
        />
      </Field>
      <div className="actions">
        <button type="submit" disabled={busy || !file}>
          Upload
        </button>
      </div>
      {busy ? (
        <div aria-live="polite">
          <ProgressBar label="Upload progress" value={progress < 1 ? progress : undefined} />
          <p className="muted small">
            {progress < 1 ? "Uploading…" : "Uploaded; the server is importing the images…"}
          </p>
        </div>
      ) : null}
      <ErrorMessage title="Upload failed" error={error} />
    </form>
  );
}

function DatasetDetailView({ id }: { id: string }) {
  const dataset = useDataset(id);
  if (dataset.error) return <ErrorMessage error={dataset.error} />;
  if (!dataset.data)
    return <p className="muted">Loading the dataset (the bundled one is described on first opening)…</p>;
  const detail = dataset.data;
  const splits = Object.keys(detail.counts).sort();
  return (
    <Panel title={`Samples of ${detail.name}`} id="samples">
      <p className="muted">
        {detail.class_names.length} classes, images {detail.image_size}×{detail.image_size}, {detail.channels}{" "}
        channel
        {detail.channels === 1 ? "" : "s"}.
      </p>
      <div className="table-wrap">
        <table className="data">
          <caption>Images per split and class</caption>
          <thead>
            <tr>
              <th scope="col">class</th>
              {splits.map((split) => (
                <th scope="col" className="num" key={split}>
                  {split}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {detail.class_names.map((name) => (
              <tr key={name}>
                <th scope="row">{name}</th>
                {splits.map((split) => (
                  <td className="num" key={split}>
                    {detail.counts[split]?.[name] ?? 0}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="class-grid" data-testid="sample-grid">
        {detail.class_names.map((name) => {
          const thumbnails = detail.thumbnails.filter((thumbnail) => thumbnail.class_name === name);
          return (
            <figure key={name} className="class-samples">
              <figcaption>{name}</figcaption>
              <div className="thumbs">
                {thumbnails.length === 0 ? <span className="muted small">no samples</span> : null}
                {thumbnails.map((thumbnail) => (
                  <img
                    key={thumbnail.url}
                    src={thumbnail.url}
                    alt={`a ${name} sample`}
                    className="pixelated thumb"
                  />
                ))}
              </div>
            </figure>
          );
        })}
      </div>
      {detail.volumes.length > 0 ? (
        <details>
          <summary>
            {detail.volumes.length} NIfTI volumes, cut into{" "}
            {detail.volumes.reduce((total, volume) => total + volume.slices.length, 0)} slices
          </summary>
          <ul className="small">
            {detail.volumes.map((volume) => (
              <li key={volume.file}>
                <code>{volume.file}</code>: {volume.shape.join("×")}, {volume.slices.length} slices across
                axis {volume.axis}, window {volume.window.map((value) => value.toPrecision(4)).join(" – ")}
              </li>
            ))}
          </ul>
        </details>
      ) : null}
      {detail.skipped.length > 0 ? (
        <details>
          <summary>{detail.skipped.length} files skipped</summary>
          <ul className="small">
            {detail.skipped.map((item) => (
              <li key={item.path}>
                <code>{item.path}</code>: {item.reason}
              </li>
            ))}
          </ul>
        </details>
      ) : null}
    </Panel>
  );
}

export function DatasetsPage() {
  const datasets = useDatasets();
  const remove = useDeleteDataset();
  const [search, setSearch] = useSearchParams();
  const selected = search.get("id") ?? undefined;
  const select = (id: string | undefined) => setSearch(id ? { id } : {}, { replace: true });

  return (
    <Page
      title="Datasets"
      intro="Image sets to train classifiers on and to attack. The bundled MRI set is always there."
    >
      <Panel title="Upload a dataset">
        <UploadDataset onUploaded={(dataset) => select(dataset.id)} />
      </Panel>
      <Panel title="All datasets">
        <ErrorMessage error={datasets.error} />
        <ErrorMessage title="Delete failed" error={remove.error} />
        {datasets.data ? (
          <div className="table-wrap">
            <table className="data">
              <thead>
                <tr>
                  <th scope="col">name</th>
                  <th scope="col">classes</th>
                  <th scope="col" className="num">
                    images
                  </th>
                  <th scope="col">size</th>
                  <th scope="col">added</th>
                  <th scope="col">
                    <span className="visually-hidden">actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {datasets.data.map((dataset) => (
                  <tr key={dataset.id} aria-selected={dataset.id === selected}>
                    <th scope="row">
                      <EditableName kind="dataset" id={dataset.id} name={dataset.name} />
                      {dataset.bundled ? <span className="badge">bundled</span> : null}
                    </th>
                    <td>{dataset.class_names.join(", ") || <span className="muted">open to see</span>}</td>
                    <td className="num">
                      {dataset.bundled && imageCount(dataset) === 0 ? "–" : imageCount(dataset)}
                    </td>
                    <td>
                      {dataset.image_size}×{dataset.image_size}
                    </td>
                    <td>{formatTime(dataset.created_at)}</td>
                    <td className="row-actions">
                      <button
                        type="button"
                        className="secondary"
                        onClick={() => select(dataset.id)}
                        aria-label={`Show samples of ${dataset.name}`}
                      >
                        Samples
                      </button>
                      {dataset.bundled ? null : (
                        <button
                          type="button"
                          className="danger"
                          aria-label={`Delete ${dataset.name}`}
                          disabled={remove.isPending}
                          onClick={() => {
                            if (window.confirm(`Delete the dataset ${dataset.name}?`)) {
                              remove.mutate(dataset.id, {
                                onSuccess: () => dataset.id === selected && select(undefined),
                              });
                            }
                          }}
                        >
                          Delete
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : datasets.isPending ? (
          <p className="muted">Loading…</p>
        ) : null}
      </Panel>
      {selected ? <DatasetDetailView id={selected} /> : null}
    </Page>
  );
}
