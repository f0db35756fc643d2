import time, sys
t0 = time.perf_counter()
import simkit
from simkit.scenario import load_scenario
t1 = time.perf_counter()
ds = simkit.simulate(load_scenario("scenarios/baseline.toml"), paths=2000, progress=False)
t2 = time.perf_counter()
print(f"import {t1-t0:.2f} s, first simulate {t2-t1:.2f} s")
