#!/bin/sh
# Demo profile: stream deploy/demo/messages.jsonl into the input topic forever, at about
# DEMO_MESSAGES_PER_SECOND. Each round prefixes ids with the round number, so every round adds new
# predictions instead of replaying ids the daemon has already written.
set -eu

RATE=${DEMO_MESSAGES_PER_SECOND:-20}
case $RATE in ''|*[!0-9]*|0) echo "DEMO_MESSAGES_PER_SECOND must be a positive integer" >&2; exit 2 ;; esac

round=0
while :; do
  round=$((round + 1))
  awk -v round="$round" -v rate="$RATE" '
    { sub(/"id": "demo-/, "\"id\": \"r" round "-demo-"); print; fflush() }
    NR % rate == 0 { system("sleep 1") }
  ' /deploy/demo/messages.jsonl
  touch /tmp/demo-heartbeat
done | /opt/kafka/bin/kafka-console-producer.sh --bootstrap-server "${BOOTSTRAP_SERVERS:-kafka:19092}" --topic "$INPUT_TOPIC"
