import { useQuery } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { fetchText, jobArtifactUrl } from "../api/client";
import { formatEps } from "../lib/format";
import { attackOutcome, pairWithClean, parseManifest, type GalleryPair } from "../lib/manifest";
import { Field } from "./Field";
import { ErrorMessage } from "./ErrorMessage";
import { PerturbationCanvas } from "./PerturbationCanvas";

const PAGE_SIZE = 12;

function PairCard({ jobId, pair }: { jobId: string; pair: GalleryPair }) {
  const { clean, attacked } = pair;
  const originalUrl = jobArtifactUrl(jobId, `set/${clean.file}`);
  const adversarialUrl = jobArtifactUrl(jobId, `set/${attacked.file}`);
  const budget = formatEps(Number.isNaN(attacked.eps) ? null : attacked.eps);
  const outcome = attackOutcome(attacked);
  return (
    <li className="pair" data-testid="gallery-pair">
      <div className="pair-images">
        <figure>
          <img src={originalUrl} alt={`original ${clean.true_label} image`} className="pixelated" />
          <figcaption>original</figcaption>
        </figure>
        <figure>
          <img src={adversarialUrl} alt={`${attacked.attack} adversarial image`} className="pixelated" />
          <figcaption>adversarial</figcaption>
        </figure>
        <figure>
          <PerturbationCanvas
            originalUrl={originalUrl}
            adversarialUrl={adversarialUrl}
            label={`${attacked.attack} perturbation, amplified`}
          />
          <figcaption>perturbation (amplified)</figcaption>
        </figure>
      </div>
      <p className="pair-caption">
        <strong>{attacked.attack}</strong> {budget} ·{" "}
        <span className={outcome === "fooled" ? "flip" : "muted"}>{outcome}</span>
        <br />
        true <strong>{attacked.true_label}</strong>: predicted <strong>{attacked.predicted_before}</strong> →{" "}
        <strong>{attacked.predicted_after}</strong>
        <br />
        <span className="muted small">
          L∞ {(attacked.linf * 255).toFixed(1)}/255 · L2 {attacked.l2.toFixed(3)} · {attacked.split} #
          {attacked.source_id}
        </span>
      </p>
    </li>
  );
}

/** Original, adversarial and amplified perturbation side by side, from the set's manifest. */
export function Gallery({ jobId, manifestUrl }: { jobId: string; manifestUrl: string }) {
  const manifest = useQuery({
    queryKey: ["manifest", jobId],
    queryFn: async () => parseManifest(await fetchText(manifestUrl)),
    staleTime: Infinity,
  });
  const [attack, setAttack] = useState("");
  // Only the images that fooled the classifier, unless there are none.
  const [onlyFooledChoice, setOnlyFooled] = useState<boolean | null>(null);
  const [shown, setShown] = useState(PAGE_SIZE);
  const pairs = useMemo(() => pairWithClean(manifest.data ?? []), [manifest.data]);
  const attacks = useMemo(() => [...new Set(pairs.map((pair) => pair.attacked.attack))], [pairs]);
  const fooled = (pair: GalleryPair) => attackOutcome(pair.attacked) === "fooled";
  const onlyFooled = onlyFooledChoice ?? pairs.some(fooled);
  const visible = pairs.filter(
    (pair) => (!attack || pair.attacked.attack === attack) && (!onlyFooled || fooled(pair)),
  );

  if (manifest.error)
    return <ErrorMessage title="Could not read the set's manifest" error={manifest.error} />;
  if (!manifest.data) return <p className="muted">Loading the gallery…</p>;
  return (
    <div className="gallery" data-testid="gallery">
      <div className="field-row">
        <Field label="Attack">
          <select value={attack} onChange={(event) => setAttack(event.target.value)}>
            <option value="">all attacks</option>
            {attacks.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </Field>
        <label className="check">
          <input
            type="checkbox"
            checked={onlyFooled}
            onChange={(event) => setOnlyFooled(event.target.checked)}
          />
          only images that fooled the classifier (correct before the attack, wrong after)
        </label>
      </div>
      <p className="muted small" aria-live="polite">
        {visible.length} of {pairs.length} attacked images
      </p>
      <ul className="pairs">
        {visible.slice(0, shown).map((pair) => (
          <PairCard key={pair.attacked.file} jobId={jobId} pair={pair} />
        ))}
      </ul>
      {visible.length > shown ? (
        <button type="button" className="secondary" onClick={() => setShown(shown + PAGE_SIZE)}>
          Show more
        </button>
      ) : null}
    </div>
  );
}
