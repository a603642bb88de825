import { useState } from "react";
import type { AttackInfo } from "../api/client";
import { useAttacks } from "../api/queries";
import { defaultAttacks, normLabel, takesBudget } from "../lib/attacks";
import { AttackSummary } from "./AttackSummary";
import { ErrorMessage } from "./ErrorMessage";

/** The attacks the API lists (GET /attacks) and those a form has ticked. */
export interface AttackChoice {
  known: AttackInfo[];
  chosen: string[];
  /** Tick (``true``) or untick one attack, against the latest choice (two ticks in a row
   * before a render both count). */
  setTicked: (name: string, ticked: boolean) => void;
  loading: boolean;
  error: unknown;
}

/** Ticked to start with: the ``preferred`` attacks the API lists (else its first one),
 * until the user ticks or unticks one. */
export function useAttackChoice(preferred: string[]): AttackChoice {
  const catalogue = useAttacks();
  const [picked, setPicked] = useState<string[] | null>(null);
  const known = catalogue.data ?? [];
  const current = (names: string[] | null) =>
    (names ?? defaultAttacks(known, preferred)).filter((name) =>
      known.some((attack) => attack.name === name),
    );
  return {
    known,
    chosen: current(picked),
    setTicked: (name, ticked) =>
      setPicked((names) => {
        const others = current(names).filter((other) => other !== name);
        return ticked ? [...others, name] : others;
      }),
    loading: catalogue.isPending,
    error: catalogue.error,
  };
}

/** A checkbox per attack the API lists, with its norm and summary. */
export function AttackChecks({
  choice,
  markNoBudget = false,
  hint,
}: {
  choice: AttackChoice;
  /** Say "no ε" beside the attacks that take no budget. */
  markNoBudget?: boolean;
  hint?: string;
}) {
  const { chosen, setTicked } = choice;
  return (
    <fieldset>
      <legend>Attacks</legend>
      {hint ? <p className="muted small fieldset-hint">{hint}</p> : null}
      {choice.loading ? <p className="muted">Loading the attacks…</p> : null}
      <ErrorMessage title="Could not list the attacks" error={choice.error} />
      <div className="checks attack-checks">
        {choice.known.map((attack) => (
          <label key={attack.name} className="check" data-norm={attack.norm}>
            <input
              type="checkbox"
              name="attacks"
              value={attack.name}
              checked={chosen.includes(attack.name)}
              onChange={(event) => setTicked(attack.name, event.target.checked)}
            />
            <span>
              <strong>{attack.name.toUpperCase()}</strong>{" "}
              <span className="norm-badge">{normLabel(attack.norm)}</span>{" "}
              {markNoBudget && !takesBudget(attack) ? <span className="muted small">no ε </span> : null}
              <AttackSummary summary={attack.summary} />
            </span>
          </label>
        ))}
      </div>
    </fieldset>
  );
}
