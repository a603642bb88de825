// The typed HTTP client: openapi-fetch over the generated schema, plus XMLHttpRequest
// uploads (fetch cannot report upload progress). Every failure becomes an ApiError whose
// message is what the API wrote in {"detail": ...}.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Schemas = components["schemas"];
export type Dataset = Schemas["DatasetOut"];
export type DatasetDetail = Schemas["DatasetDetailOut"];
export type Model = Schemas["ModelOut"];
/** A job as the API answers it: one type per job type, told apart by ``type``, each with
 * its own ``params`` and ``result`` (from the job registry, ``advguard.jobs.JOB_KINDS``). */
export type Job = paths["/api/v1/jobs/{job_id}"]["get"]["responses"][200]["content"]["application/json"];
export type JobList = Schemas["JobListOut"];
export type JobState = Job["state"];
export type JobType = Job["type"];
/** The job of one type, e.g. ``JobOf<"evaluate_robustness">``. */
export type JobOf<T extends JobType> = Extract<Job, { type: T }>;

/** Whether ``job`` is of type ``type`` (narrows it to that type's params and result). */
export function isJobOf<T extends JobType>(job: Job, type: T): job is JobOf<T> {
  return job.type === type;
}
export type Detector = Schemas["DetectorOut"];
export type DetectorDetail = Schemas["DetectorDetailOut"];
export type Verdict = Schemas["VerdictOut"];
export type PredictResult = Schemas["PredictOut"];
export type AttackResult = Schemas["AttackOut"];
export type Health = Schemas["HealthOut"];
export type AttackInfo = Schemas["AttackInfoOut"];
/** The body of every error the API answers (4xx, 503): ``{"detail": ...}``. */
export type ErrorBody = Schemas["ErrorOut"];
/** A job request (``POST /jobs``): the parameters of one job type, told apart by ``type``. */
export type JobRequest = NonNullable<
  paths["/api/v1/jobs"]["post"]["requestBody"]
>["content"]["application/json"];
export type RobustnessRequest = Extract<JobRequest, { type?: "evaluate_robustness" }>;
export type AdversarialTrainingRequest = Extract<JobRequest, { type?: "adversarial_training" }>;
/** A preprocessing defense an evaluate_robustness job can put in front of the model. */
export type DefenseName = NonNullable<RobustnessRequest["defenses"]>[number];

export const API_PREFIX = "/api/v1";

/** An error the API answered (``status`` ≥ 400) or a request that never got an answer (0). */
export class ApiError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

interface ValidationItem {
  loc?: (string | number)[];
  msg?: string;
}

/** Whether ``body`` is the API's error body (``ErrorOut``). */
export function isErrorBody(body: unknown): body is ErrorBody {
  return body !== null && typeof body === "object" && "detail" in body;
}

/** The message of an error body: FastAPI's ``detail`` string, or its validation list
 * flattened to "field: problem" lines. Anything else (a proxy's text page) is shown as is. */
export function detailMessage(body: unknown, status: number, statusText = ""): string {
  const detail = isErrorBody(body) ? body.detail : body;
  if (typeof detail === "string" && detail.trim() !== "") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item: ValidationItem) => {
        const where = (item.loc ?? []).filter((part) => part !== "body").join(" → ");
        return where ? `${where}: ${item.msg ?? "invalid"}` : (item.msg ?? "invalid");
      })
      .join("; ");
  }
  if (detail !== undefined && detail !== null && detail !== "") return JSON.stringify(detail);
  return `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
}

function origin(): string {
  return typeof window === "undefined" ? "" : window.location.origin;
}

// fetch is looked up on each call (not captured once), so tests can stub it.
export const api = createClient<paths>({ baseUrl: origin(), fetch: (request) => globalThis.fetch(request) });

interface FetchResult<T> {
  data?: T;
  /** ``ErrorOut`` for the answers the API documents; anything for the rest. */
  error?: ErrorBody | unknown;
  response: Response;
}

/** The data of an openapi-fetch call, or an ApiError with the API's message. */
export async function unwrap<T>(call: Promise<FetchResult<T>>): Promise<T> {
  let result: FetchResult<T>;
  try {
    result = await call;
  } catch (error) {
    throw new ApiError(0, `cannot reach the API: ${(error as Error).message}`);
  }
  if (result.error !== undefined || !result.response.ok) {
    const { status, statusText } = result.response;
    throw new ApiError(status, detailMessage(result.error, status, statusText));
  }
  return result.data as T;
}

/** POST a multipart form with upload progress (0..1); resolves to the JSON answer. */
export function uploadForm<T>(
  path: string,
  form: FormData,
  onProgress?: (fraction: number) => void,
  signal?: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", `${origin()}${path}`);
    request.responseType = "text";
    request.setRequestHeader("Accept", "application/json");
    request.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress?.(event.loaded / event.total);
    };
    request.onload = () => {
      let body: unknown = request.responseText;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        // not JSON (e.g. a proxy's HTML page): keep the text for the message
      }
      if (request.status >= 200 && request.status < 300) resolve(body as T);
      else reject(new ApiError(request.status, detailMessage(body, request.status, request.statusText)));
    };
    request.onerror = () => reject(new ApiError(0, "cannot reach the API (network error)"));
    request.onabort = () => reject(new ApiError(0, "upload cancelled"));
    signal?.addEventListener("abort", () => request.abort());
    request.send(form);
  });
}

export function uploadDataset(
  file: File,
  name: string,
  onProgress?: (fraction: number) => void,
  signal?: AbortSignal,
): Promise<DatasetDetail> {
  const form = new FormData();
  form.append("file", file);
  if (name.trim()) form.append("name", name.trim());
  return uploadForm<DatasetDetail>(`${API_PREFIX}/datasets`, form, onProgress, signal);
}

export function uploadModel(
  file: File,
  name: string,
  spec: string,
  onProgress?: (fraction: number) => void,
  signal?: AbortSignal,
): Promise<Model> {
  const form = new FormData();
  form.append("file", file);
  if (name.trim()) form.append("name", name.trim());
  if (spec.trim()) form.append("spec", spec.trim());
  return uploadForm<Model>(`${API_PREFIX}/models`, form, onProgress, signal);
}

export function predictImages(files: File[], detectorId?: string): Promise<PredictResult> {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  return unwrap(
    api.POST("/api/v1/predict", {
      params: { query: detectorId ? { detector_id: detectorId } : {} },
      body: form as unknown as { files: string[] },
    }),
  );
}

export function attackImage(
  file: File,
  attack: string,
  eps: number | undefined,
  detectorId?: string,
): Promise<AttackResult> {
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("attack", attack);
  if (eps !== undefined) form.append("eps", String(eps));
  return unwrap(
    api.POST("/api/v1/attack", {
      params: { query: detectorId ? { detector_id: detectorId } : {} },
      body: form as unknown as { file: string; attack: string },
    }),
  );
}

/** A job's artifact file by its path inside the job's folder. */
export function jobArtifactUrl(jobId: string, path: string): string {
  const encoded = path.split("/").map(encodeURIComponent).join("/");
  return `${API_PREFIX}/artifacts/jobs/${encodeURIComponent(jobId)}/${encoded}`;
}

/** Plain GET of a text artifact (the adversarial set's manifest). */
export async function fetchText(url: string): Promise<string> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new ApiError(0, `cannot reach the API: ${(error as Error).message}`);
  }
  const text = await response.text();
  if (!response.ok) {
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // keep the text
    }
    throw new ApiError(response.status, detailMessage(body, response.status, response.statusText));
  }
  return text;
}
