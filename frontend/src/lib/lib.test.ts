import { describe, expect, it } from "vitest";
import { budgetEcho, formatEps, formatSeconds, parseBudget, parseBudgets, rangeProblem } from "./format";
import { attackOutcome, pairWithClean, parseCsv, parseManifest } from "./manifest";
import { baseDefense, budgetLabel, isBpda } from "./robustness";

const HEADER =
  "file,split,source_file,source_id,true_label,attack,params,eps,predicted_before,predicted_after,success,linf,l2";

describe("budgets", () => {
  it("are written one way everywhere: 8/255, 0.031, or a bare 8 for 8/255", () => {
    expect(parseBudgets("2, 4 8/255")).toEqual([2 / 255, 4 / 255, 8 / 255]);
    // An L2 radius is taken as written: 1 is a radius of 1, not 1/255.
    expect(parseBudgets("0, 0.25, 1", { allowZero: true, norm: "l2" })).toEqual([0, 0.25, 1]);
    expect(() => parseBudget("150", { norm: "l2" })).toThrow('budget "150" is over the limit of 100');
    expect(() => parseBudgets("0.5, .5", { norm: "l2" })).toThrow("give each once");
    expect(budgetEcho("0, 0.5", { allowZero: true, norm: "l2" })).toBe("ε = 0, 0.5");
    expect(parseBudget("0.031")).toBe(0.031);
    expect(parseBudget("8")).toBe(8 / 255);
    expect(parseBudget("1")).toBe(1 / 255);
    expect(parseBudget("255/255")).toBe(1);
    expect(parseBudget("8 / 255")).toBe(8 / 255);
    expect(formatEps(8 / 255)).toBe("8/255");
    expect(formatEps(null)).toBe("L2");
  });

  it("refuses what is not a budget, saying why", () => {
    expect(() => parseBudgets("")).toThrow(/at least one/);
    expect(() => parseBudgets("8, x")).toThrow(
      'budget "x" is not a number: write 8/255, 0.031 or 8 (= 8/255)',
    );
    expect(() => parseBudgets("-1")).toThrow('budget "-1" must be more than 0');
    expect(() => parseBudgets("0")).toThrow('budget "0" must be more than 0');
    expect(() => parseBudget("0.3", { max: 0.25 })).toThrow('budget "0.3" is over the limit of 0.2500');
  });

  it("takes 0 (clean accuracy) where allowed, as a grid like 0,1/255,…,16/255", () => {
    expect(parseBudgets("0,1/255,2/255,4/255,8/255,16/255", { allowZero: true })).toEqual(
      [0, 1, 2, 4, 8, 16].map((steps) => steps / 255),
    );
    expect(parseBudgets("0; 8 / 255", { allowZero: true })).toEqual([0, 8 / 255]);
  });

  it("says what is wrong with a grid, and echoes a good one normalised", () => {
    const grid = (text: string) => () => parseBudgets(text, { allowZero: true });
    expect(grid(" ")).toThrow("give at least one budget, e.g. 0, 8/255");
    expect(grid("0, 300")).toThrow(/"300"/);
    expect(grid("8, 8/255")).toThrow('budget "8/255" is the same as "8": give each once');
    expect(grid(Array.from({ length: 17 }, (_, i) => i).join(","))).toThrow(
      "give at most 16 budgets (there are 17)",
    );
    expect(budgetEcho("0, 4, 0.031", { allowZero: true })).toBe("ε = 0, 4/255, 0.03100");
    expect(budgetEcho("4, nope")).toBe("");
  });
});

describe("numbers in forms and reports", () => {
  it("says which field is out of range", () => {
    expect(rangeProblem("the epochs", 10, 1, 500)).toBeNull();
    expect(rangeProblem("the epochs", 2.5, 1, 500)).toBe("the epochs must be a whole number from 1 to 500");
    expect(rangeProblem("the epochs", Number.NaN, 1, 500)).not.toBeNull();
    expect(rangeProblem("β", 2.5, 0, 100, false)).toBeNull();
    expect(rangeProblem("β", 101, 0, 100, false)).toBe("β must be a number from 0 to 100");
  });

  it("writes seconds for people", () => {
    expect(formatSeconds(4.25)).toBe("4.3 s");
    expect(formatSeconds(65)).toBe("1 min 5 s");
    expect(formatSeconds(null)).toBe("–");
  });
});

describe("robustness results", () => {
  it("tell BPDA settings and their defense", () => {
    expect(isBpda("jpeg + BPDA")).toBe(true);
    expect(isBpda("jpeg")).toBe(false);
    expect(baseDefense("gaussian_blur + BPDA")).toBe("gaussian_blur");
    expect(baseDefense("none")).toBe("none");
    expect(budgetLabel(0)).toBe("0");
    expect(budgetLabel(16 / 255)).toBe("16/255");
  });
});

describe("manifest", () => {
  it("parses quoted CSV fields holding JSON", () => {
    expect(parseCsv('a,"{""eps"": 0.03, ""steps"": 10}",c\r\n1,2,3\n')).toEqual([
      ["a", '{"eps": 0.03, "steps": 10}', "c"],
      ["1", "2", "3"],
    ]);
  });

  it("pairs each attacked image with its clean source, attacks taking turns", () => {
    const text = [
      HEADER,
      "test/clean/00000.png,test,a.png,100,glioma,clean,{},nan,glioma,glioma,False,0.0,0.0",
      "test/clean/00001.png,test,b.png,101,healthy,clean,{},nan,healthy,healthy,False,0.0,0.0",
      'test/fgsm_8-255/00000.png,test,a.png,100,glioma,fgsm,"{""eps"": 0.0313}",0.0313,glioma,healthy,True,0.0313,1.0',
      'test/fgsm_8-255/00001.png,test,b.png,101,healthy,fgsm,"{""eps"": 0.0313}",0.0313,healthy,healthy,False,0.0313,1.0',
      'test/pgd_8-255/00000.png,test,a.png,100,glioma,pgd,"{""eps"": 0.0313}",0.0313,glioma,healthy,True,0.0313,0.8',
      "test/noise_sign/00000.png,test,a.png,100,glioma,noise_sign,{},0.0313,glioma,glioma,False,0.0313,1.0",
      "train/fgsm_8-255/00000.png,train,a.png,100,glioma,fgsm,{},0.0313,glioma,healthy,True,0.0313,1.0",
    ].join("\n");
    const rows = parseManifest(text);
    expect(rows).toHaveLength(7);
    expect(rows[2]).toMatchObject({ attack: "fgsm", success: true, eps: 0.0313, params: '{"eps": 0.0313}' });
    expect(Number.isNaN(rows[0]!.eps)).toBe(true);
    const pairs = pairWithClean(rows);
    // Noise controls are not attacks; the train-split row has no clean train source here.
    expect(pairs.map((pair) => [pair.attacked.file, pair.clean.file])).toEqual([
      ["test/fgsm_8-255/00000.png", "test/clean/00000.png"],
      ["test/pgd_8-255/00000.png", "test/clean/00000.png"],
      ["test/fgsm_8-255/00001.png", "test/clean/00001.png"],
    ]);
  });

  it("calls an image fooled only when the classifier had it right before the attack", () => {
    const rows = parseManifest(
      [
        HEADER,
        "test/fgsm/0.png,test,a.png,1,glioma,fgsm,{},0.03,glioma,healthy,True,0.03,1.0",
        "test/fgsm/1.png,test,b.png,2,glioma,fgsm,{},0.03,glioma,glioma,False,0.03,1.0",
        "test/fgsm/2.png,test,c.png,3,glioma,fgsm,{},0.03,healthy,healthy,True,0.03,1.0",
      ].join("\n"),
    );
    expect(rows.map(attackOutcome)).toEqual(["fooled", "resisted", "already wrong"]);
  });
});
