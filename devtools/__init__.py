"""Development tooling (benchmarks, the fault harness), driven by the nox sessions; not shipped."""
