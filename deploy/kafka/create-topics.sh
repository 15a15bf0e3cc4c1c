#!/bin/sh
# One-shot: create the stream's topics with the partition counts from .env. Safe to run again:
# existing topics are kept, and grown (never shrunk) when .env asks for more partitions.
set -eu

BIN=/opt/kafka/bin
BOOTSTRAP=${BOOTSTRAP_SERVERS:-kafka:19092}

partitions_of() {
  "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --describe --topic "$1" \
    | sed -n 's/.*PartitionCount: *\([0-9][0-9]*\).*/\1/p' | head -n 1
}

ensure_topic() {
  topic=$1 wanted=$2
  shift 2
  case $wanted in
    ''|*[!0-9]*|0) echo "partition count for $topic must be a positive integer, got '$wanted'" >&2; exit 2 ;;
  esac
  "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$topic" --partitions "$wanted" --replication-factor 1 "$@"
  have=$(partitions_of "$topic")
  if [ "$have" -lt "$wanted" ]; then
    echo "growing $topic from $have to $wanted partitions (keyed records may move partition)"
    "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --alter --topic "$topic" --partitions "$wanted"
  elif [ "$have" -gt "$wanted" ]; then
    echo "warning: $topic has $have partitions, more than the $wanted asked for; Kafka cannot shrink a topic" >&2
  fi
  echo "topic $topic: $(partitions_of "$topic") partitions"
}

ensure_topic "$INPUT_TOPIC" "$INPUT_PARTITIONS"
ensure_topic "$OUTPUT_TOPIC" "$OUTPUT_PARTITIONS"
# Dead letters are kept for 30 days by default so operators have time to replay them.
ensure_topic "$DEAD_LETTER_TOPIC" "$DEAD_LETTER_PARTITIONS" --config "retention.ms=${DEAD_LETTER_RETENTION_MS:-2592000000}"
ensure_topic "$LABELS_TOPIC" "$LABELS_PARTITIONS"
