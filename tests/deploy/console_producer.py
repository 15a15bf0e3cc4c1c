"""What the demo service's ``kafka-console-producer.sh --bootstrap-server B --topic T`` does, for
tests/deploy/native.py: each stdin line one record (no key), until stdin ends or SIGTERM."""

from __future__ import annotations

import argparse
import sys

from kafka import KafkaProducer


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap-server", required=True)
    ap.add_argument("--topic", required=True)
    args = ap.parse_args()
    producer = KafkaProducer(bootstrap_servers=args.bootstrap_server)
    try:
        for line in sys.stdin.buffer:
            if line.strip():
                producer.send(args.topic, line.rstrip(b"\n"))
    finally:
        producer.close(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
