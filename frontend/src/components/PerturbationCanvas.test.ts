import { describe, expect, it } from "vitest";
import { amplifiedDifference } from "./PerturbationCanvas";

function grey(values: number[]): ImageData {
  const data = new Uint8ClampedArray(values.length * 4);
  values.forEach((value, i) => data.set([value, value, value, 255], i * 4));
  return { data, width: values.length, height: 1, colorSpace: "srgb" } as ImageData;
}

describe("amplifiedDifference", () => {
  it("stretches the largest change to the full grey range, no change to mid-grey", () => {
    const out = grey([0, 0, 0, 0]);
    const peak = amplifiedDifference(grey([100, 100, 100, 100]), grey([108, 92, 100, 104]), out);
    expect(peak).toBeCloseTo(8 / 255);
    expect([0, 1, 2, 3].map((i) => out.data[i * 4])).toEqual([255, 0, 128, 191]);
  });

  it("is flat mid-grey when nothing changed", () => {
    const out = grey([0, 0]);
    expect(amplifiedDifference(grey([7, 9]), grey([7, 9]), out)).toBe(0);
    expect([out.data[0], out.data[4]]).toEqual([128, 128]);
  });
});
