"""Time the data preparation on generated archives in the official layouts.

    python benchmarks/bench_prepare.py [--voc-images 300] [--city-images 96] [--workers N]

Builds a VOC tar + SBD tgz and the two Cityscapes zips in a temporary folder, then times, per data set:
the cold run (checksum, extraction, linking, mask conversion, check), a warm re-run (everything already
done), and the conversion alone (extraction done, fresh output folder). Prints images per second and
the machine. Nothing touches the network.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Measure the checkout this file lives in, not whichever latentseg happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latentseg.bench.machine import cpu_model
from latentseg.data.layout import DatasetMeta
from latentseg.prepare.cityscapes import PACKAGES, prepare_cityscapes
from latentseg.prepare.download import Remote, file_digest
from latentseg.prepare.mock_release import make_cityscapes_zips, make_sbd_tgz, make_voc_tar
from latentseg.prepare.voc import prepare_voc


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_voc(tmp: Path, n_images: int, size: tuple[int, int], workers: int | None) -> None:
    # Proportions of the real release: ~14% VOC train, ~12% VOC val, the rest SBD only.
    n_train, n_val = max(2, n_images * 14 // 100), max(2, n_images * 12 // 100)
    ids = [f"{2008 + i % 4}_{i:06d}" for i in range(n_images)]
    voc_train, voc_val, sbd_only = ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :]
    sbd_train = sbd_only[: len(sbd_only) * 3 // 4] + voc_train[: n_train // 2]
    sbd_val = sbd_only[len(sbd_only) * 3 // 4 :] + voc_val[: n_val // 2]
    raw = tmp / "voc_raw"
    raw.mkdir()
    gen, _ = timed(
        lambda: (
            make_voc_tar(
                raw / "VOCtrainval_11-May-2012.tar", voc_train, voc_val, extra_image_ids=sbd_only, size=size
            ),
            make_sbd_tgz(raw / "benchmark.tgz", sbd_train, sbd_val, size=size),
        )
    )
    remotes = {
        "voc_remote": Remote(
            ("http://unused",),
            "VOCtrainval_11-May-2012.tar",
            md5=file_digest(raw / "VOCtrainval_11-May-2012.tar", "md5"),
        ),
        "sbd_remote": Remote(
            ("http://unused",), "benchmark.tgz", md5=file_digest(raw / "benchmark.tgz", "md5")
        ),
    }
    run = lambda out: prepare_voc(tmp / out, raw, download=False, workers=workers, **remotes)  # noqa: E731
    time_preparation("VOC+SBD", run, "voc", size, gen)


def bench_cityscapes(tmp: Path, n_images: int, size: tuple[int, int], workers: int | None) -> None:
    per_city = max(1, n_images // 6)  # 4 train cities + 2 val cities
    cities = {"train": ["aachen", "bochum", "bremen", "cologne"], "val": ["frankfurt", "lindau"]}
    raw = tmp / "city_raw"
    gen, _ = timed(lambda: make_cityscapes_zips(raw, cities, per_city=per_city, size=size))
    remotes = [Remote(("http://unused",), name, md5=file_digest(raw / name, "md5")) for name in PACKAGES]
    run = lambda out: prepare_cityscapes(tmp / out, raw, download=False, remotes=remotes, workers=workers)  # noqa: E731
    time_preparation("Cityscapes", run, "city", size, gen)


def time_preparation(name: str, run: Callable[[str], DatasetMeta], prefix: str, size: tuple[int, int],
                     gen: float) -> None:
    """A cold run (extract + convert + check), a warm re-run of the same folder, and a conversion into a new
    folder from the already extracted archives; then the report."""
    cold, meta = timed(lambda: run(f"{prefix}_a"))
    warm, _ = timed(lambda: run(f"{prefix}_a"))
    convert, _ = timed(lambda: run(f"{prefix}_b"))
    n = meta.num_train + meta.num_val
    print(f"{name}  {n} images ({meta.num_train} train, {meta.num_val} val) at {size[0]}x{size[1]}, "
          f"archives generated in {gen:.1f} s")
    report(n, cold, warm, convert)


def report(n: int, cold: float, warm: float, convert: float) -> None:
    for label, seconds in (
        ("cold (extract + convert + check)", cold),
        ("warm re-run", warm),
        ("convert + check only", convert),
    ):
        print(f"  {label:34s} {seconds:7.2f} s  {n / seconds:8.1f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--voc-images", type=int, default=300)
    parser.add_argument("--voc-size", default="250x188", help="WxH of the generated VOC images")
    parser.add_argument("--city-images", type=int, default=96)
    parser.add_argument("--city-size", default="512x256", help="WxH (the real ones are 2048x1024)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the mock Cityscapes counts differ from the release's: expected
    voc_size = tuple(int(v) for v in args.voc_size.split("x"))
    city_size = tuple(int(v) for v in args.city_size.split("x"))
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"workers {args.workers or os.cpu_count()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench_prepare.") as tmp:
        bench_voc(Path(tmp), args.voc_images, voc_size, args.workers)
        bench_cityscapes(Path(tmp), args.city_images, city_size, args.workers)


if __name__ == "__main__":
    main()
