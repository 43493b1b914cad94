"""What a benchmark ran on: CPU, threads, load, GPU, library versions, date."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

def machine(device: torch.device) -> dict[str, str]:
    info = {"cpu": cpu_model(), "cpu_threads": str(torch.get_num_threads()), "cpu_cores": str(os.cpu_count()),
            "load_average_1min": f"{os.getloadavg()[0]:.2f}", "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), "device": device.type}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = str(torch.version.cuda)
        info["cudnn"] = str(torch.backends.cudnn.version())
    return info
