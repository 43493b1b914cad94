"""Stage `evaluate@<experiment>`: mIoU, per-class IoU, P(l|c) and effective latent classes on the validation set."""

import argparse
import json
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from latentseg.data.dataset import SegmentationDataset, eval_transform
from latentseg.data.layout import atomic_write_text, read_meta
from latentseg.evaluate import effective_latent_classes, evaluate
from latentseg.train.trainer import load_trained, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="prepared data set (its val.txt is evaluated)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics.json to write")
    parser.add_argument("--latent", type=Path, required=True, help="CSV of P(l|c) on the validation set")
    args = parser.parse_args()
    model, cfg, state = load_trained(args.checkpoint)
    meta = read_meta(args.data)
    device = resolve_device(cfg.runtime.device)
    val = SegmentationDataset(args.data, args.data / "val.txt", eval_transform(cfg.data))
    uniform = cfg.data.eval_pad is not None or cfg.data.resize is not None  # else sizes may differ: one at a time
    loader = DataLoader(val, batch_size=8 if uniform else 1, num_workers=cfg.data.workers)
    result = evaluate(model.to(device), loader, meta.num_classes, device, autocast=device.type == "cuda")
    metrics = {"miou": round(100 * result.miou, 2), "steps": state["step"]}
    metrics.update({f"iou/{c}": round(100 * float(v), 2) for c, v in zip(meta.classes, result.iou, strict=True)
                    if not torch.isnan(v)})
    p_lc = result.p_latent_given_class
    if p_lc is not None:
        for t in (0.1, 0.9):
            metrics[f"effective_t{t}"] = effective_latent_classes(p_lc, t)
        frame = pd.DataFrame(p_lc.numpy(), index=meta.classes, columns=[f"l{i}" for i in range(p_lc.shape[1])])
        atomic_write_text(args.latent, frame.to_csv(float_format="%.5f"))
    else:
        atomic_write_text(args.latent, "")  # no latent branch in this run
    atomic_write_text(args.metrics, json.dumps(metrics, indent=2) + "\n")
    print(f"{args.checkpoint}: mIoU {metrics['miou']:.2f}")


if __name__ == "__main__":
    main()
