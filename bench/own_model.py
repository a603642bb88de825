"""A medical-imaging team's own network through the whole service, timed step by step.

Starts the whole service (``advguard up``: Redis, a worker, the API) in a fresh data folder,
then, over HTTP as a user would: uploads real brain-mri-4class scans as a dataset (a zip of
``--per-class`` test scans per class), uploads a MONAI network (``--network``: ResNet-18
or DenseNet121, 2-D, ``--channels`` channels at ``--size`` px) as ONNX (converted by the
service) and as traced TorchScript,
and for each: builds an adversarial set (FGSM and PGD at 8/255), trains a detector on it,
evaluates robustness (FGSM and PGD, ε 0 and 8/255, ``--limit`` scans, and the adaptive
attack on the detector, the slowest part by far), times one-image predict
(p50 of 20) and the live test's one-image PGD attack. The network's weights are MONAI's
initialisation: every step runs the same passes whatever the weights, and the times are
what this machine's cores spend on them.

Needs ``monai`` and ``onnx`` (the test environment has them).

Usage: python bench/own_model.py [--size 128] [--channels 1] [--per-class 40] [--limit 32]
       [--network resnet18|densenet121] [--forms onnx,torchscript]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import httpx
import predict as predict_bench
import torch

from advguard.data import real_mri_path

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]


def scans_zip(per_class: int) -> tuple[bytes, list[bytes]]:
    """A dataset zip of the first ``per_class`` test scans of each class, as they are on
    disk, and a few of them for predict."""
    source = real_mri_path() / "test"
    buffer, scans = io.BytesIO(), []
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in CLASSES:
            for path in sorted((source / name).iterdir())[:per_class]:
                archive.writestr(f"{name}/{path.name}", path.read_bytes())
                scans.append(path.read_bytes())
    return buffer.getvalue(), scans[:: max(len(scans) // 20, 1)][:20]


def monai_network(name: str, channels: int) -> torch.nn.Module:
    """MONAI's DenseNet121 or ResNet-18 (2-D, ``channels`` in, one logit per class)."""
    from monai.networks.nets import DenseNet121, ResNet

    torch.manual_seed(0)
    if name == "densenet121":
        network = DenseNet121(spatial_dims=2, in_channels=channels, out_channels=len(CLASSES))
    else:
        network = ResNet(
            block="basic",
            layers=[2, 2, 2, 2],
            block_inplanes=[64, 128, 256, 512],
            spatial_dims=2,
            n_input_channels=channels,
            num_classes=len(CLASSES),
        )
    return network.eval()


def model_files(name: str, channels: int, size: int) -> dict[str, bytes]:
    network = monai_network(name, channels)
    example = torch.rand(2, channels, size, size)
    onnx, script = io.BytesIO(), io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network,
            (example,),
            onnx,
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        )
    torch.jit.save(torch.jit.trace(network, example[:1]), script)
    return {"onnx": onnx.getvalue(), "torchscript": script.getvalue()}


def job(client: httpx.Client, request: dict) -> tuple[dict, float]:
    started = time.perf_counter()
    answer = client.post("/api/v1/jobs", json=request)
    answer.raise_for_status()
    job_id = answer.json()["id"]
    while True:
        record = client.get(f"/api/v1/jobs/{job_id}").json()
        if record["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    if record["state"] != "succeeded":
        raise SystemExit(f"{request['type']} {record['state']}: {record.get('error')}")
    print(f"  {request['type']}: {time.perf_counter() - started:.0f} s")
    return record, time.perf_counter() - started


def timed(call):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    answer = call()
    answer.raise_for_status()
    return answer.json(), time.perf_counter() - started


def pipeline(
    client: httpx.Client,
    form: str,
    data: bytes,
    args: argparse.Namespace,
    dataset_id: str,
    samples: list[bytes],
) -> list[str]:
    spec = {"class_names": CLASSES, "in_channels": args.channels, "image_size": args.size}
    model, upload_s = timed(
        lambda: client.post(
            "/api/v1/models",
            files={"file": (f"{args.network}.{form}", data)},
            data={"spec": json.dumps(spec), "name": f"{args.network} {form}"},
        )
    )
    built, set_s = job(
        client,
        {
            "type": "build_adversarial_set",
            "model_id": model["id"],
            "dataset_id": dataset_id,
            "attacks": ["fgsm", "pgd"],
            "eps": [8 / 255],
            "fraction": 1.0,
        },
    )
    trained, detector_s = job(client, {"type": "train_detector", "set_job_id": built["id"]})
    detector_id = trained["result"]["detector_id"]
    _, robustness_s = job(
        client,
        {
            "type": "evaluate_robustness",
            "model_id": model["id"],
            "dataset_id": dataset_id,
            "attacks": ["fgsm", "pgd"],
            "eps": [0, 8 / 255],
            "limit": args.limit,
            "detector_id": detector_id,
        },
    )
    predict_times = []
    for body in samples:
        _, seconds = timed(
            lambda body=body: client.post(
                "/api/v1/predict",
                params={"detector_id": detector_id},
                files=[("files", ("scan.jpg", body))],
            )
        )
        predict_times.append(seconds)
    _, attack_s = timed(
        lambda: client.post(
            "/api/v1/attack",
            params={"detector_id": detector_id},
            files={"file": ("scan.jpg", samples[0])},
            data={"attack": "pgd", "eps": "8"},
        )
    )
    images = built["result"].get("images", "?")
    return [
        form, f"{len(data) / 1e6:.1f} MB", f"{upload_s:.1f}", f"{set_s:.0f} ({images} images)",
        f"{detector_s:.0f}", f"{robustness_s:.0f}",
        f"{statistics.median(predict_times) * 1000:.0f}", f"{attack_s:.1f}",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", choices=("densenet121", "resnet18"), default="resnet18")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--channels", type=int, choices=(1, 3), default=1)
    parser.add_argument("--per-class", type=int, default=40, help="test scans per class")
    parser.add_argument("--limit", type=int, default=32, help="scans the robustness job attacks")
    parser.add_argument(
        "--forms", default="onnx,torchscript", help="how the network is uploaded (both)"
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    archive, samples = scans_zip(args.per_class)
    files = model_files(args.network, args.channels, args.size)
    print(
        f"MONAI {args.network}, {args.channels} channel(s) at {args.size} px; "
        f"{args.per_class * len(CLASSES)} brain-mri-4class test scans; {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="advguard-bench-own-") as temporary:
        data_dir = Path(temporary)
        port = predict_bench.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ADVGUARD_")}
        env.update(
            ADVGUARD_DATA_DIR=str(data_dir),
            ADVGUARD_BROKER_URL=f"redis://127.0.0.1:{predict_bench.free_port()}/0",
            ADVGUARD_QUERY_WATCH="false",
        )
        log = (data_dir / "up.log").open("wb")
        service = subprocess.Popen(
            [str(Path(sys.executable).parent / "advguard"), "up", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            base_url = f"http://127.0.0.1:{port}"
            predict_bench.wait_healthy(service, base_url)
            with httpx.Client(base_url=base_url, timeout=600, trust_env=False) as client:
                dataset = client.post(
                    "/api/v1/datasets", files={"file": ("scans.zip", archive)},
                    data={"name": "brain-mri-4class test scans"},
                )  # fmt: skip
                dataset.raise_for_status()
                rows = [
                    pipeline(client, form, data, args, dataset.json()["id"], samples)
                    for form, data in files.items()
                    if form in args.forms.split(",")
                ]
        finally:
            service.terminate()
            service.wait(timeout=60)
    print()
    predict_bench.print_table(
        ["uploaded as", "file", "upload s", "adversarial set s", "detector s",
         "robustness s", "predict p50 ms", "live-test attack s"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
