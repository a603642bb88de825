// react-query hooks over the typed client: caching, polling of running jobs, and the
// lists a finished job changes refreshed when it ends.
import { useMutation, useQuery, useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useEffect, useRef } from "react";
import {
  api,
  isJobOf,
  unwrap,
  type DatasetDetail,
  type Job,
  type JobOf,
  type JobRequest,
  type JobState,
  type JobType,
} from "./client";

/** How often a queued or running job is polled. */
export const JOB_POLL_MS = 1000;
/** How often the jobs list is polled while nothing is running. */
export const IDLE_POLL_MS = 5000;

export const keys = {
  datasets: ["datasets"] as const,
  dataset: (id: string) => ["datasets", id] as const,
  models: ["models"] as const,
  detectors: ["detectors"] as const,
  detector: (id: string) => ["detectors", id] as const,
  jobs: ["jobs"] as const,
  job: (id: string) => ["jobs", "one", id] as const,
  health: ["health"] as const,
  attacks: ["attacks"] as const,
  queryAttacks: ["query-attacks"] as const,
};

export function isActive(state: JobState | undefined): boolean {
  return state === "queued" || state === "running";
}

/** What a finished job of each type may have created or changed. */
export function refreshAfterJob(client: QueryClient, job: Job): void {
  void client.invalidateQueries({ queryKey: keys.jobs });
  if (job.type === "train_classifier" || job.type === "adversarial_training")
    void client.invalidateQueries({ queryKey: keys.models });
  if (job.type === "train_detector" || job.type === "evaluate")
    void client.invalidateQueries({ queryKey: keys.detectors });
}

export function useHealth() {
  return useQuery({
    queryKey: keys.health,
    queryFn: () => unwrap(api.GET("/api/v1/health")),
    refetchInterval: 15000,
    retry: false,
  });
}

/** The attacks the service can run, with each one's norm and defaults; they change only
 * when the service is redeployed. */
export function useAttacks() {
  return useQuery({
    queryKey: keys.attacks,
    queryFn: () => unwrap(api.GET("/api/v1/attacks")),
    staleTime: Infinity,
  });
}

/** How often the flagged clients are polled. */
export const QUERY_ATTACKS_POLL_MS = 5000;

/** Clients the query watch flagged within its window (polled: attacks arrive unannounced). */
export function useQueryAttacks() {
  return useQuery({
    queryKey: keys.queryAttacks,
    queryFn: () => unwrap(api.GET("/api/v1/query-attacks")),
    refetchInterval: QUERY_ATTACKS_POLL_MS,
  });
}

/** Clear a client's flag and query history (a false alarm). */
export function useClearQueryClient() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (name: string) =>
      unwrap(api.DELETE("/api/v1/query-attacks/{client}", { params: { path: { client: name } } })),
    onSuccess: () => client.invalidateQueries({ queryKey: keys.queryAttacks }),
  });
}

export function useDatasets() {
  return useQuery({ queryKey: keys.datasets, queryFn: () => unwrap(api.GET("/api/v1/datasets")) });
}

export function useDataset(id: string | undefined) {
  return useQuery({
    queryKey: keys.dataset(id ?? ""),
    queryFn: () =>
      unwrap(api.GET("/api/v1/datasets/{dataset_id}", { params: { path: { dataset_id: id! } } })),
    enabled: Boolean(id),
  });
}

export function useModels() {
  return useQuery({ queryKey: keys.models, queryFn: () => unwrap(api.GET("/api/v1/models")) });
}

export function useDetectors() {
  return useQuery({
    queryKey: keys.detectors,
    queryFn: () => unwrap(api.GET("/api/v1/detectors")),
  });
}

export function useDetector(id: string | undefined) {
  return useQuery({
    queryKey: keys.detector(id ?? ""),
    queryFn: () =>
      unwrap(api.GET("/api/v1/detectors/{detector_id}", { params: { path: { detector_id: id! } } })),
    enabled: Boolean(id),
  });
}

export interface JobFilter<T extends JobType = JobType> {
  type?: T;
  state?: JobState;
  limit?: number;
  offset?: number;
}

/** Jobs (of ``filter.type``, typed as such), newest first; polled fast while any listed
 * job is still queued or running. */
export function useJobs<T extends JobType = JobType>(filter: JobFilter<T> = {}) {
  return useQuery({
    queryKey: [...keys.jobs, "list", filter],
    queryFn: async () => {
      const list = await unwrap(api.GET("/api/v1/jobs", { params: { query: filter } }));
      const items = list.items.filter(
        (job): job is JobOf<T> => filter.type === undefined || isJobOf(job, filter.type),
      );
      return { items, total: list.total };
    },
    refetchInterval: (query) =>
      query.state.data?.items.some((job) => isActive(job.state)) ? JOB_POLL_MS : IDLE_POLL_MS,
  });
}

/** One job, polled until it ends; when it ends the lists it may change are refreshed. */
export function useJob(id: string | undefined) {
  const client = useQueryClient();
  const query = useQuery({
    queryKey: keys.job(id ?? ""),
    queryFn: () => unwrap(api.GET("/api/v1/jobs/{job_id}", { params: { path: { job_id: id! } } })),
    enabled: Boolean(id),
    refetchInterval: (q) => {
      const job = q.state.data;
      return job === undefined || isActive(job.state) ? JOB_POLL_MS : false;
    },
  });
  const seen = useRef<string | undefined>(undefined);
  const job = query.data;
  useEffect(() => {
    if (job === undefined) return;
    const marker = `${job.id}:${job.state}`;
    if (!isActive(job.state) && seen.current !== marker) refreshAfterJob(client, job);
    seen.current = marker;
  }, [client, job]);
  return query;
}

export function useCreateJob() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (request: JobRequest) => unwrap(api.POST("/api/v1/jobs", { body: request })),
    onSuccess: (job) => {
      client.setQueryData(keys.job(job.id), job);
      void client.invalidateQueries({ queryKey: keys.jobs });
    },
  });
}

export function useCancelJob() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) =>
      unwrap(api.POST("/api/v1/jobs/{job_id}/cancel", { params: { path: { job_id: id } } })),
    onSuccess: (job) => {
      client.setQueryData(keys.job(job.id), job);
      void client.invalidateQueries({ queryKey: keys.jobs });
    },
  });
}

export function useDeleteDataset() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) =>
      unwrap(api.DELETE("/api/v1/datasets/{dataset_id}", { params: { path: { dataset_id: id } } })),
    onSuccess: () => client.invalidateQueries({ queryKey: keys.datasets }),
  });
}

export function useDeleteModel() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) =>
      unwrap(api.DELETE("/api/v1/models/{model_id}", { params: { path: { model_id: id } } })),
    onSuccess: () => client.invalidateQueries({ queryKey: keys.models }),
  });
}

export function useDeleteDetector() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) =>
      unwrap(api.DELETE("/api/v1/detectors/{detector_id}", { params: { path: { detector_id: id } } })),
    onSuccess: () => client.invalidateQueries({ queryKey: keys.detectors }),
  });
}

/** Put a freshly uploaded dataset in the cache so its detail shows without a refetch. */
export function rememberDataset(client: QueryClient, dataset: DatasetDetail): void {
  client.setQueryData(keys.dataset(dataset.id), dataset);
  void client.invalidateQueries({ queryKey: keys.datasets });
}

/** The records a user can rename, and the lists a new name shows in. */
export type NamedKind = "dataset" | "model" | "detector" | "job";

const RENAMED_LISTS: Record<NamedKind, readonly string[]> = {
  dataset: keys.datasets,
  model: keys.models,
  detector: keys.detectors,
  job: keys.jobs,
};

/** Give a dataset, model, detector or job another name (``PATCH``); the lists and the
 * record's own view refresh. */
export function useRename(kind: NamedKind) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async ({ id, name }: { id: string; name: string }) => {
      const body = { name };
      switch (kind) {
        case "dataset":
          return unwrap(
            api.PATCH("/api/v1/datasets/{dataset_id}", { params: { path: { dataset_id: id } }, body }),
          );
        case "model":
          return unwrap(api.PATCH("/api/v1/models/{model_id}", { params: { path: { model_id: id } }, body }));
        case "detector":
          return unwrap(
            api.PATCH("/api/v1/detectors/{detector_id}", { params: { path: { detector_id: id } }, body }),
          );
        case "job":
          return unwrap(api.PATCH("/api/v1/jobs/{job_id}", { params: { path: { job_id: id } }, body }));
      }
    },
    onSuccess: () => client.invalidateQueries({ queryKey: RENAMED_LISTS[kind] }),
  });
}
