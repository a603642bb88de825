import { useState } from "react";
import { useSearchParams } from "react-router";

/** The page's query string, and a setter of some of its keys (undefined or "" removes
 * one) that replaces the history entry, so that Back leaves the page. */
export function useSearchState(): [URLSearchParams, (changes: Record<string, string | undefined>) => void] {
  const [search, setSearch] = useSearchParams();
  const update = (changes: Record<string, string | undefined>) =>
    setSearch(
      (previous) => {
        const next = new URLSearchParams(previous);
        for (const [key, value] of Object.entries(changes)) {
          if (value) next.set(key, value);
          else next.delete(key);
        }
        return next;
      },
      { replace: true },
    );
  return [search, update];
}

const REMEMBERED = "advguard:last:";

/** The last value chosen in the picker ``key`` (kept in this browser), or "". */
export function remembered(key: string): string {
  try {
    return window.localStorage.getItem(REMEMBERED + key) ?? "";
  } catch {
    return ""; // storage disabled: pickers start from their defaults
  }
}

/** Remember ``value`` as the last choice of the picker ``key``. */
export function remember(key: string, value: string): void {
  try {
    if (value) window.localStorage.setItem(REMEMBERED + key, value);
  } catch {
    // storage disabled or full: the choice is simply not kept
  }
}

/** A picker's choice that outlives the page: it starts from ``initial`` when given, else
 * from the last choice made in this browser, and every new choice is remembered. */
export function useRememberedChoice(key: string, initial = ""): [string, (value: string) => void] {
  const [value, setValue] = useState(() => initial || remembered(key));
  const choose = (next: string) => {
    remember(key, next);
    setValue(next);
  };
  return [value, choose];
}
