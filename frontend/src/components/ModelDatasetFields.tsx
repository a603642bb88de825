import type { Dataset, Model } from "../api/client";
import { useDatasets, useModels } from "../api/queries";
import { shortId } from "../lib/format";
import { useRememberedChoice } from "../lib/search";
import { Field } from "./Field";

/** A model and the dataset to use it on, as a form picks them. */
export interface ModelDatasetChoice {
  /** The models offered (those ``accept`` lets through). */
  models: Model[];
  datasets: Dataset[];
  /** The chosen model; undefined when there is none (or, if optional, none is chosen). */
  model: Model | undefined;
  datasetId: string;
  dataset: Dataset | undefined;
  setModelId: (id: string) => void;
  setDatasetId: (id: string) => void;
  /** The model's classes differ from the dataset's: the API will refuse the pair. */
  mismatch: boolean;
  error: unknown;
}

/** Model and dataset choice: the first model unless ``optional``, and the dataset the
 * model was trained on, else the newest one. */
export function useModelDataset({
  initialModelId = "",
  optional = false,
  accept = () => true,
}: {
  initialModelId?: string;
  optional?: boolean;
  accept?: (model: Model) => boolean;
} = {}): ModelDatasetChoice {
  const datasets = useDatasets();
  const models = useModels();
  const [datasetId, setDatasetId] = useRememberedChoice("dataset");
  const [modelId, setModelId] = useRememberedChoice("model", initialModelId);
  const offered = (models.data ?? []).filter(accept);
  const model = offered.find((m) => m.id === modelId) ?? (optional ? undefined : offered[0]);
  const chosenDataset =
    (datasets.data?.some((d) => d.id === datasetId) ? datasetId : "") ||
    (model?.dataset_id && datasets.data?.some((d) => d.id === model.dataset_id) ? model.dataset_id : "") ||
    datasets.data?.at(-1)?.id ||
    "";
  const dataset = datasets.data?.find((d) => d.id === chosenDataset);
  return {
    models: offered,
    datasets: datasets.data ?? [],
    model,
    datasetId: chosenDataset,
    dataset,
    setModelId,
    setDatasetId,
    mismatch: Boolean(
      model &&
      dataset &&
      dataset.class_names.length > 0 &&
      dataset.class_names.join("\n") !== model.class_names.join("\n"),
    ),
    error: datasets.error ?? models.error,
  };
}

/** The dataset and model selects, and a warning when their classes differ. */
export function ModelDatasetFields({
  choice,
  modelLabel = "Model",
  noModel,
}: {
  choice: ModelDatasetChoice;
  modelLabel?: string;
  /** The text of a "no model" option, for a form where the model is optional. */
  noModel?: string;
}) {
  const { model, dataset } = choice;
  return (
    <>
      <div className="field-row">
        <Field label="Dataset">
          <select value={choice.datasetId} onChange={(event) => choice.setDatasetId(event.target.value)}>
            {choice.datasets.map((d) => (
              <option key={d.id} value={d.id}>
                {d.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label={modelLabel}>
          <select value={model?.id ?? ""} onChange={(event) => choice.setModelId(event.target.value)}>
            {noModel !== undefined ? <option value="">{noModel}</option> : null}
            {noModel === undefined && choice.models.length === 0 ? (
              <option value="">no models yet</option>
            ) : null}
            {choice.models.map((m) => (
              <option key={m.id} value={m.id}>
                {m.name} ({shortId(m.id)})
              </option>
            ))}
          </select>
        </Field>
      </div>
      {choice.mismatch && model && dataset ? (
        <p className="warning" role="status">
          The model&apos;s classes ({model.class_names.join(", ")}) differ from the dataset&apos;s (
          {dataset.class_names.join(", ")}): the API will refuse this pair.
        </p>
      ) : null}
    </>
  );
}
