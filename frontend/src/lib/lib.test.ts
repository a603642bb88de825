import { describe, expect, it } from "vitest";
import { formatEps, parseBudgets } from "./format";
import { pairWithClean, parseCsv, parseManifest } from "./manifest";

const HEADER =
  "file,split,source_file,source_id,true_label,attack,params,eps,predicted_before,predicted_after,success,linf,l2";

describe("budgets", () => {
  it("reads 1/255 steps and writes them back", () => {
    expect(parseBudgets("2, 4 8/255")).toEqual([2 / 255, 4 / 255, 8 / 255]);
    expect(formatEps(8 / 255)).toBe("8/255");
    expect(formatEps(null)).toBe("L2");
  });

  it("refuses what is not a budget", () => {
    expect(() => parseBudgets("")).toThrow(/at least one/);
    expect(() => parseBudgets("8, x")).toThrow(/"x"/);
    expect(() => parseBudgets("-1")).toThrow();
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
});
