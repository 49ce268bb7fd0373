"""A session with one container: `Sandbox` and the parts it composes (transfers, runs, results)."""
