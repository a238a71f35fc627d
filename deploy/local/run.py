"""`make run`: create the topics, say where everything listens, then run every process.

The processes are declared in `deploy/local/Procfile` and run by honcho, so one Ctrl-C stops
them all; each runs under `deploy/local/supervise.py`, so a crashed service is restarted with
backoff while the others keep running. Logs are for a person here: coloured console lines, not
the JSON a log pipeline wants in production. The infrastructure (`deploy/local/infra.sh`) keeps
running until `make infra-down`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from deploy.local.topics import ensure_topics
from services.archive import checkpoints

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(os.environ.get("SADA_RUN_DIR", ROOT / ".run"))

WHERE = f"""
Sada is starting. Where everything listens (127.0.0.1 only):
  intake API     http://127.0.0.1:8001/v1/submissions   (docs: /docs; demo key: local-<channel>-key)
  router         http://127.0.0.1:8002/health
  campaigns      http://127.0.0.1:8005/health
  notifier       http://127.0.0.1:8003/health
  archive API    http://127.0.0.1:8004/v1/submissions   (docs: /docs; local token: see README)
  metrics        http://127.0.0.1:800[1-5]/metrics
  Prometheus     http://127.0.0.1:9090   (alerts: /alerts)
  Kafka          127.0.0.1:9092          FerretDB  mongodb://127.0.0.1:27017/
  SMTP sink      127.0.0.1:1025          mail stored in {RUN / "mail"} (Maildir)
  logs           {RUN / "logs"} (infrastructure); services log to this terminal
  checkpoints    {RUN / "witness"} (signed by the dev key in {RUN / "audit"}):
                 sada audit verify --checkpoints {RUN / "witness"}
Try `make demo` in another terminal. A crashed service restarts; Ctrl-C stops them all.
"""


def audit_env(run: Path) -> dict[str, str]:
    """Return the archive's checkpoint settings, with a dev key made once in the run dir.

    The verify key is copied into the witness directory too, where `sada audit verify
    --checkpoints DIR` looks by default (a convenience for a laptop: in production the
    auditors hold it apart from the witness).
    """
    keys, witness = run / "audit", run / "witness"
    if not (keys / checkpoints.SIGNING_FILE).exists():
        checkpoints.generate(keys)
    witness.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(keys / checkpoints.VERIFY_FILE, witness / checkpoints.VERIFY_FILE)
    return {
        "SADA_AUDIT_LOG__SIGNING_KEY_FILE": str(keys / checkpoints.SIGNING_FILE),
        "SADA_AUDIT_LOG__VERIFY_KEY_FILE": str(keys / checkpoints.VERIFY_FILE),
        "SADA_AUDIT_LOG__CHECKPOINT_DIR": str(witness),
    }


def main() -> None:
    """Create the topics, print the addresses and hand over to honcho."""
    created = asyncio.run(ensure_topics("127.0.0.1:9092", partitions=3, single_node=True))
    if created:
        print(f"created topics: {', '.join(created)}")
    print(WHERE, flush=True)
    honcho = str(ROOT / ".venv" / "bin" / "honcho")
    procfile = str(ROOT / "deploy" / "local" / "Procfile")
    os.chdir(ROOT)
    env = {"SADA_LOG_JSON": "false", "FORCE_COLOR": "1", **audit_env(RUN), **os.environ}
    os.execve(honcho, [honcho, "-f", procfile, "-d", str(ROOT), "start"], env)


if __name__ == "__main__":
    main()
