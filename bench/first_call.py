"""A new process's first `simkit.simulate` of 2,000 baseline paths, timed (issue 18).

Run it several times in a row on one empty cache to see the cold and the warm call:

    export JAX_COMPILATION_CACHE_DIR=$(mktemp -d)
    for i in 1 2 3 4; do python bench/first_call.py; done

Prints the time of `import simkit` and of the first call (the imports `simkit.simulate` needs
on first use included), and the CPU model.
"""

import time

from machine import cpu_model


def main() -> None:
    t0 = time.perf_counter()
    import simkit
    from simkit.scenario import load_scenario

    t1 = time.perf_counter()
    simkit.simulate(load_scenario("scenarios/baseline.toml"), paths=2000, progress=False)
    t2 = time.perf_counter()
    print(f"import {t1 - t0:.2f} s, first simulate {t2 - t1:.2f} s ({cpu_model()})")


if __name__ == "__main__":
    main()
