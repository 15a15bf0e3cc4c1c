"""The daemon as its own process for the benchmarks: ``python -m benchmarks.daemon_proc SETTINGS_JSON KIND``.

KIND is ``minilm`` (the offline default model, loaded as ``sentistream run`` loads it) or
``constant`` (no model). Prints ``READY`` once the consumer owns its partitions, and on SIGTERM
drains, exits 0 and prints a JSON report with the peak RSS.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import threading
import time

from daemon.app import Daemon
from schemas.logs import configure_logging
from schemas.settings import Settings


def main() -> int:
    settings = Settings(**json.loads(sys.argv[1]))
    kind = sys.argv[2]
    configure_logging(settings.observability)
    if kind == "constant":
        from benchmarks.common import ConstantClassifier

        classifier = ConstantClassifier()
    else:
        from models.loading import load_classifier

        classifier = load_classifier(settings.model)
        classifier.classify(["warm up the model"] * settings.batch.max_size)
    daemon = Daemon(settings, classifier)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())

    def announce() -> None:
        while not daemon.is_ready():
            time.sleep(0.05)
        print("READY", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    code = daemon.run()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"exit_code": code, "peak_rss_mib": peak_kib / 1024, "processed": daemon.processed}), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
