"""The CPU model every bench script prints beside its figures (machines differ)."""

import platform


def cpu_model() -> str:
    """`model name` of /proc/cpuinfo, else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
