import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, uploadForm } from "./client";

/** Just enough of XMLHttpRequest to play an upload: progress events, then an answer. */
class FakeRequest {
  static answer: { status: number; body: string } = { status: 201, body: "{}" };
  static sent: { method: string; url: string; body: unknown }[] = [];
  upload: { onprogress: ((event: Partial<ProgressEvent>) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  status = 0;
  statusText = "";
  responseText = "";
  responseType = "";
  private method = "";
  private url = "";
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader() {}
  abort() {
    this.onabort?.();
  }
  send(body: unknown) {
    FakeRequest.sent.push({ method: this.method, url: this.url, body });
    queueMicrotask(() => {
      this.upload.onprogress?.({ lengthComputable: true, loaded: 50, total: 100 });
      this.upload.onprogress?.({ lengthComputable: true, loaded: 100, total: 100 });
      this.status = FakeRequest.answer.status;
      this.responseText = FakeRequest.answer.body;
      this.onload?.();
    });
  }
}

afterEach(() => {
  vi.unstubAllGlobals();
  FakeRequest.sent = [];
});

describe("uploadForm", () => {
  it("reports upload progress and resolves to the JSON answer", async () => {
    vi.stubGlobal("XMLHttpRequest", FakeRequest);
    FakeRequest.answer = { status: 201, body: JSON.stringify({ id: "abc", name: "scans" }) };
    const progress: number[] = [];
    const form = new FormData();
    const answer = await uploadForm<{ id: string }>("/api/v1/datasets", form, (f) => progress.push(f));
    expect(answer).toEqual({ id: "abc", name: "scans" });
    expect(progress).toEqual([0.5, 1]);
    expect(FakeRequest.sent[0]).toMatchObject({
      method: "POST",
      url: "http://localhost:3000/api/v1/datasets",
      body: form,
    });
  });

  it("rejects with the API's detail", async () => {
    vi.stubGlobal("XMLHttpRequest", FakeRequest);
    FakeRequest.answer = {
      status: 422,
      body: JSON.stringify({ detail: "'x.zip': no images in the archive" }),
    };
    await expect(uploadForm("/api/v1/datasets", new FormData())).rejects.toEqual(
      new ApiError(422, "'x.zip': no images in the archive"),
    );
  });
});
