// The attacks the service knows (advguard.attacks.ATTACKS). The API has no endpoint that
// lists them yet, so they are named here; an unknown name gets the API's 422 message.
export interface AttackInfo {
  name: string;
  title: string;
  /** L∞ attacks take a budget ε; CW (L2) runs at its defaults. */
  norm: "linf" | "l2";
}

export const ATTACKS: AttackInfo[] = [
  { name: "fgsm", title: "FGSM (one step, L∞)", norm: "linf" },
  { name: "bim", title: "BIM (iterative, L∞)", norm: "linf" },
  { name: "pgd", title: "PGD (iterative, random start, L∞)", norm: "linf" },
  { name: "mim", title: "MIM (momentum, L∞)", norm: "linf" },
  { name: "cw", title: "Carlini–Wagner (L2, no ε)", norm: "l2" },
];

export function attackNorm(name: string): "linf" | "l2" {
  return ATTACKS.find((attack) => attack.name === name)?.norm ?? "linf";
}
