"""The streaming daemon: source → decode/validate → batch → classify → sinks → checkpoint."""
