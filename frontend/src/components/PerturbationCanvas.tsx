import { useEffect, useRef, useState } from "react";

function loadImage(url: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not load ${url}`));
    image.src = url;
  });
}

function pixels(image: HTMLImageElement): ImageData {
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  if (!context) throw new Error("no 2D canvas");
  context.drawImage(image, 0, 0);
  return context.getImageData(0, 0, canvas.width, canvas.height);
}

/** adversarial − original, stretched so the largest change spans the grey range
 * (mid-grey: no change). Returns the peak difference in pixel scale [0, 1]. */
export function amplifiedDifference(original: ImageData, adversarial: ImageData, out: ImageData): number {
  let peak = 0;
  for (let i = 0; i < original.data.length; i += 4) {
    for (let c = 0; c < 3; c++) {
      peak = Math.max(peak, Math.abs(adversarial.data[i + c]! - original.data[i + c]!));
    }
  }
  for (let i = 0; i < original.data.length; i += 4) {
    for (let c = 0; c < 3; c++) {
      const delta = adversarial.data[i + c]! - original.data[i + c]!;
      out.data[i + c] = peak > 0 ? Math.round(127.5 + (127.5 * delta) / peak) : 128;
    }
    out.data[i + 3] = 255;
  }
  return peak / 255;
}

/** The amplified perturbation between two same-size images, drawn in the browser. */
export function PerturbationCanvas({
  originalUrl,
  adversarialUrl,
  label,
}: {
  originalUrl: string;
  adversarialUrl: string;
  label: string;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    Promise.all([loadImage(originalUrl), loadImage(adversarialUrl)])
      .then(([original, adversarial]) => {
        const target = canvas.current;
        if (!live || !target) return;
        const a = pixels(original);
        const b = pixels(adversarial);
        if (a.width !== b.width || a.height !== b.height) throw new Error("the images differ in size");
        target.width = a.width;
        target.height = a.height;
        const context = target.getContext("2d");
        if (!context) throw new Error("no 2D canvas");
        const out = context.createImageData(a.width, a.height);
        amplifiedDifference(a, b, out);
        context.putImageData(out, 0, 0);
        setProblem(null);
      })
      .catch((error: Error) => live && setProblem(error.message));
    return () => {
      live = false;
    };
  }, [originalUrl, adversarialUrl]);
  return problem ? (
    <span className="muted small" role="note">
      {problem}
    </span>
  ) : (
    <canvas ref={canvas} className="pixelated" role="img" aria-label={label} width={1} height={1} />
  );
}
