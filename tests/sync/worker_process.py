"""A sync worker in its own process, so a test can kill it for real (SIGKILL: no cleanup at all).

    python -m tests.sync.worker_process <connection_id> <lease_seconds>
Settings come from the environment, as for the function app.
"""

import sys

from functions.sync import engine

if __name__ == "__main__":
    result = engine.run(sys.argv[1], reason="test", lease_seconds=float(sys.argv[2]))
    print(result.outcome)
