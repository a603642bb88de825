// The adversarial set's manifest.csv, and each attacked image paired with its clean source.

export interface ManifestRow {
  file: string;
  split: string;
  source_file: string;
  source_id: string;
  true_label: string;
  attack: string;
  params: string;
  eps: number;
  predicted_before: string;
  predicted_after: string;
  success: boolean;
  linf: number;
  l2: number;
}

export interface GalleryPair {
  clean: ManifestRow;
  attacked: ManifestRow;
}

export const CLEAN = "clean";

/** What an attack did to one image: it "fooled" the classifier only when the clean image
 * was classified correctly and the attacked one is not (the success rate counts the same
 * way); an image the classifier got wrong to begin with was "already wrong". */
export function attackOutcome(row: ManifestRow): "fooled" | "resisted" | "already wrong" {
  if (row.predicted_before !== row.true_label) return "already wrong";
  return row.predicted_after === row.true_label ? "resisted" : "fooled";
}
/** Images labelled clean that are not the sources themselves (noise and augmentations). */
export const CONTROLS = new Set(["noise_rician", "noise_gaussian", "noise_sign", "augmented"]);

/** RFC 4180 CSV (quoted fields may hold commas, quotes and newlines). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ",") {
      row.push(field);
      field = "";
    } else if (char === "\n" || char === "\r") {
      if (char === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += char;
  }
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => r.length > 1 || r[0] !== "");
}

function truthy(value: string | undefined): boolean {
  return value === "True" || value === "true" || value === "1";
}

export function parseManifest(text: string): ManifestRow[] {
  const [header, ...body] = parseCsv(text);
  if (!header) return [];
  const column = (name: string) => {
    const index = header.indexOf(name);
    if (index < 0) throw new Error(`manifest.csv has no ${JSON.stringify(name)} column`);
    return index;
  };
  const at = Object.fromEntries(
    [
      "file",
      "split",
      "source_file",
      "source_id",
      "true_label",
      "attack",
      "params",
      "eps",
      "predicted_before",
      "predicted_after",
      "success",
      "linf",
      "l2",
    ].map((name) => [name, column(name)]),
  ) as Record<keyof ManifestRow, number>;
  return body.map((cells) => ({
    file: cells[at.file] ?? "",
    split: cells[at.split] ?? "",
    source_file: cells[at.source_file] ?? "",
    source_id: cells[at.source_id] ?? "",
    true_label: cells[at.true_label] ?? "",
    attack: cells[at.attack] ?? "",
    params: cells[at.params] ?? "",
    eps: Number(cells[at.eps]),
    predicted_before: cells[at.predicted_before] ?? "",
    predicted_after: cells[at.predicted_after] ?? "",
    success: truthy(cells[at.success]),
    linf: Number(cells[at.linf]),
    l2: Number(cells[at.l2]),
  }));
}

export function isAttack(row: ManifestRow): boolean {
  return row.attack !== CLEAN && !CONTROLS.has(row.attack);
}

/** Every attacked image with the clean image of the same split and source, the attacks
 * (and budgets) taking turns so that the first page shows each of them. */
export function pairWithClean(rows: ManifestRow[]): GalleryPair[] {
  const clean = new Map<string, ManifestRow>();
  for (const row of rows) if (row.attack === CLEAN) clean.set(`${row.split}/${row.source_id}`, row);
  const groups = new Map<string, GalleryPair[]>();
  for (const row of rows) {
    if (!isAttack(row)) continue;
    const source = clean.get(`${row.split}/${row.source_id}`);
    if (!source) continue;
    const key = `${row.attack} ${row.eps}`;
    const group = groups.get(key) ?? [];
    if (group.length === 0) groups.set(key, group);
    group.push({ clean: source, attacked: row });
  }
  const lists = [...groups.values()];
  const total = lists.reduce((n, list) => n + list.length, 0);
  const pairs: GalleryPair[] = [];
  for (let k = 0; pairs.length < total; k++) {
    for (const list of lists) if (k < list.length) pairs.push(list[k]!);
  }
  return pairs;
}
