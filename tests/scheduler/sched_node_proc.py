"""Entry point of the node processes the multi-process tests start and kill.

``python sched_node_proc.py [scheduler] [workers]`` runs ``Node.run_forever`` with
Settings from the environment (``AGGSCHED_*``), exactly as ``aggsched scheduler`` and
``aggsched worker`` do, until SIGTERM.
"""

from __future__ import annotations

import logging
import sys

from aggsched.config import Settings
from aggsched.engine.node import Node
from aggsched.store import Store


def main(parts: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s")
    settings = Settings()
    store = Store.open(settings.resolved_database_url, migrate=False)
    try:
        node = Node(settings, store, scheduler="scheduler" in parts, workers="workers" in parts)
        node.run_forever()
    finally:
        store.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
