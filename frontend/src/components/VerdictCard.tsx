import type { Verdict } from "../api/client";
import { formatWindow, percent } from "../lib/format";
import { namedAttack } from "../lib/verdict";
import { ProbabilityBars } from "./ProbabilityBars";

/** Below this top-class probability an accepted image's class is called unsure: with four
 * classes, the runner-up can then hold a third or more. */
export const UNSURE_BELOW = 0.7;

/** The guard's answer on one image: the class when clean, the attack when adversarial. */
export function VerdictCard({ verdict, title }: { verdict: Verdict; title?: string }) {
  const attack = namedAttack(verdict);
  const top = verdict.label ? verdict.class_probabilities[verdict.label] : undefined;
  const unsure = !verdict.is_adversarial && top !== undefined && top < UNSURE_BELOW;
  const unlike = verdict.unlike_training ?? [];
  return (
    <section
      className={`verdict ${verdict.is_adversarial ? "verdict-adversarial" : "verdict-clean"}`}
      aria-label={title ?? `Verdict on ${verdict.file}`}
      data-testid="verdict"
    >
      {title ? <h4>{title}</h4> : null}
      {verdict.is_adversarial ? (
        <p className="verdict-headline">
          <strong>Adversarial</strong>
          {attack.name && !attack.known ? (
            <>
              {" "}
              — like none of its attacks (closest: <strong className="verdict-attack">{attack.name}</strong>)
            </>
          ) : attack.name ? (
            <>
              {" "}
              — attack <strong className="verdict-attack">{verdict.attack}</strong>
              {attack.probability !== undefined ? ` (${percent(attack.probability)})` : ""}
            </>
          ) : null}
        </p>
      ) : (
        <p className="verdict-headline">
          <strong>Clean</strong> — class <strong className="verdict-label">{verdict.label ?? "–"}</strong>
          {verdict.label ? ` (${percent(top)})` : ""}
        </p>
      )}
      {verdict.is_adversarial && !attack.known ? (
        <p className="muted small">
          The detector finds the image unusual for the classifier, but its attack-naming part gives its
          attacks only {percent(attack.total)} together: an attack it never trained on, or an image unlike its
          scans.
        </p>
      ) : null}
      {verdict.query_attack?.suspected ? (
        <p className="warning" role="note" aria-label="Query attack suspected">
          This client&apos;s recent queries look like a black-box attack in progress: within the last{" "}
          {formatWindow(verdict.query_attack.window)} it sent images that nearly duplicate many of its earlier
          ones (this one: {verdict.query_attack.matches}), as Square or HopSkipJump do.
        </p>
      ) : null}
      {unlike.length > 0 ? (
        <div className="warning" role="note" aria-label="Unlike the training scans">
          <p>
            This image does not look like the scans the guard was trained on, so neither the class nor the
            verdict can be trusted. Outside their range:
          </p>
          <ul>
            {unlike.map((line) => (
              <li key={line}>{line}</li>
            ))}
          </ul>
        </div>
      ) : null}
      {unsure ? (
        <p className="warning" role="note" aria-label="Unsure">
          The classifier is unsure: its likeliest class has only {percent(top)}. Do not rely on this answer;
          check that the image is a scan of the kind the model was trained on.
        </p>
      ) : null}
      <p className="muted small">
        Probability adversarial: {percent(verdict.score)}
        {verdict.is_adversarial ? " — the classifier's answer is withheld" : ""}
      </p>
      {verdict.is_adversarial ? (
        <>
          <ProbabilityBars label="Attack probabilities" probabilities={verdict.attack_probabilities} />
          <details>
            <summary>Class probabilities (not trusted)</summary>
            <ProbabilityBars label="Class probabilities" probabilities={verdict.class_probabilities} />
          </details>
        </>
      ) : (
        <ProbabilityBars label="Class probabilities" probabilities={verdict.class_probabilities} />
      )}
    </section>
  );
}
