"""One frozen settings object, read once at start-up and passed down.

Sources, highest priority first: constructor arguments, ``SENTISTREAM_*`` environment variables
(nested with ``__``, e.g. ``SENTISTREAM_BATCH__MAX_SIZE``; lists as JSON or comma-separated), a YAML
or TOML file named by ``SENTISTREAM_CONFIG_FILE``, then the defaults below.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)
from sqlalchemy.engine import URL, make_url

from schemas.errors import ConfigError
from schemas.settings_input import (
    CONFIG_FILE_ENV,
    ENV_PREFIX,
    CommaListEnvSource,
    Sources,
    describe_errors,
    read_config_file,
    undecodable_env,
)
from schemas.settings_input import unknown_env_warnings as _unknown_env_warnings


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())


class KafkaSettings(_Section):
    bootstrap_servers: str = Field(default="localhost:9092", description="Comma-separated host:port list.")
    input_topics: tuple[str, ...] = Field(
        default=("sentistream.input",), description='Comma-separated or a JSON list, e.g. `tweets,reviews`.',
    )
    output_topic: str = Field(default="sentistream.predictions", description="Prediction JSON, key = message id.")
    dead_letter_topic: str = Field(default="sentistream.dead-letters", description="Original bytes + reason headers.")
    group_id: str = Field(default="sentistream", description="Consumer group; replicas share it.")
    client_id: str = "sentistream-daemon"
    delivery: Literal["transactional", "idempotent"] = Field(
        default="transactional",
        description="`transactional`: output records and offsets in one KIP-98 transaction (exactly-once). "
        "`idempotent`: idempotent-producer flush, then offset commit (output at-least-once; for brokers "
        "without working transactions, e.g. librdkafka's mock cluster, `sentistream demo --broker mock`).",
    )
    transactional_id: str | None = Field(
        default=None,
        description="Unique to each live replica, the same after its restart (a restart then aborts what its "
        "crashed run left open). Unset: `<group_id>-<hostname>-<slot>`, the slot being the lowest one no live "
        "replica of the group holds on this host (leased until the process ends), so replicas on one host "
        "never fence each other and a restarted one takes the crashed one's id.",
    )
    api_version: str | None = Field(
        default=None, pattern=r"^\d+(\.\d+){1,2}$",
        description="Broker API version; unset = probe. librdkafka's mock cluster (`demo --broker mock`) needs `2.3`.",
    )
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: PositiveInt = 500
    poll_timeout_ms: PositiveInt = 100
    fetch_max_wait_ms: PositiveInt = Field(
        default=500,
        description="Longest the broker may hold a fetch that finds no new records (Kafka's default). A real "
        "broker answers as soon as records arrive; librdkafka's mock cluster holds every fetch this long, so "
        "`demo --broker mock` and the benchmarks set 100.",
    )
    session_timeout_ms: PositiveInt = 30_000
    max_poll_interval_ms: PositiveInt = 300_000
    request_timeout_ms: PositiveInt = 30_000
    metadata_max_age_ms: PositiveInt = Field(
        default=30_000,
        description="Metadata refresh interval: how soon a client notices a topic missing from its first metadata.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True


    @model_validator(mode="after")
    def _fetch_wait_within_request(self) -> KafkaSettings:
        if self.fetch_max_wait_ms >= self.request_timeout_ms:
            raise ValueError(f"fetch_max_wait_ms ({self.fetch_max_wait_ms}) must be below request_timeout_ms "
                             f"({self.request_timeout_ms}): a held fetch would time out")
        return self

    def client_config(self, client_suffix: str = "") -> dict:
        """kafka-python connection and security options, shared by every consumer and producer."""
        cfg: dict = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id + client_suffix,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
            "metadata_max_age_ms": self.metadata_max_age_ms,
        }
        if self.api_version:
            cfg["api_version"] = tuple(int(p) for p in self.api_version.split("."))
        if self.sasl_mechanism:
            cfg["sasl_mechanism"] = self.sasl_mechanism
            cfg["sasl_plain_username"] = self.sasl_username
            if self.sasl_password is not None:
                cfg["sasl_plain_password"] = self.sasl_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            cfg["ssl_check_hostname"] = self.ssl_check_hostname
            for opt in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, opt) is not None:
                    cfg[opt] = str(getattr(self, opt))
        return cfg


_URL_EXAMPLES = "postgresql+psycopg://user:pass@host:5432/db or sqlite:///file.db"


def _check_driver(url: URL) -> None:
    """The dialect is one the schema supports, its driver is installed and synchronous."""
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise ValueError(f"unsupported database {url.get_backend_name()!r}; use {_URL_EXAMPLES}")
    try:
        dialect = url.get_dialect()
        dialect.import_dbapi()
    except Exception:  # NoSuchModuleError, ImportError: the driver name is the one thing to fix
        raise ValueError(f"unknown or missing database driver {url.drivername!r}; use {_URL_EXAMPLES}") from None
    if dialect.is_async:
        raise ValueError(f"{url.drivername!r} is an asyncio driver; use {_URL_EXAMPLES}")


class DatabaseSettings(_Section):
    url: SecretStr = Field(
        default=SecretStr("postgresql+psycopg://sentistream@localhost:5432/sentistream"),
        description="SQLAlchemy URL (secret: never logged). Postgres via psycopg 3; `sqlite:///file.db` for demos.",
    )
    pool_size: PositiveInt = 5
    connect_timeout_s: PositiveInt = 10
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    sslrootcert: Path | None = None

    @property
    def safe_url(self) -> str:
        return make_url(self.url.get_secret_value()).render_as_string(hide_password=True)

    @field_validator("url")
    @classmethod
    def _supported(cls, url: SecretStr) -> SecretStr:
        """A URL sentistream can open: PostgreSQL through psycopg 3 (the driver that is installed) or SQLite.

        No message here may hold the URL: it carries the password."""
        raw = url.get_secret_value()
        try:
            parsed = make_url(raw)
        except Exception:  # sqlalchemy's message would echo the URL
            raise ValueError(f"not a database URL; expected e.g. {_URL_EXAMPLES}") from None
        backend, _, driver = parsed.drivername.partition("+")
        if backend.lower() in ("postgres", "postgresql"):  # the common spellings, given the installed driver
            name = f"postgresql+{driver or 'psycopg'}"
            raw = name + ":" + raw.split(":", 1)[1]
            parsed = parsed.set(drivername=name)
        _check_driver(parsed)
        return SecretStr(raw)


class BatchSettings(_Section):
    max_size: int = Field(default=64, gt=0, le=4096, description="Messages per inference batch, at most.")
    max_wait_ms: NonNegativeInt = Field(default=50, description="A batch closes this long after its first message if the inference worker is idle; "
                             "while it is busy the batch keeps filling up to max_size.")
    queue_size: PositiveInt = Field(default=4, description="Batches waiting for the inference worker; when full, "
                            "the poll loop waits (backpressure).")
    max_text_chars: PositiveInt = Field(default=10_000, description="Longer texts are dead-lettered (oversized_text).")


class ModelSettings(_Section):
    """Every model is a spec: ``preset`` or ``spec_file``, unset both = the default preset minilm-lora-sst2
    (offline MiniLM-L6 + the shipped SST-2 adapter). The settings below that are set override the spec."""

    path: Path | None = Field(default=None, description="Local transformers model directory; unset = the preset's "
                              "base. With no preset or spec file it serves this model with no adapter (unless "
                              "adapter_path is set), so it needs a trained classification head of its own.")
    adapter_path: Path | None = Field(default=None, description="Adapter directory (PEFT LoRA, or SpaRTA format); "
                                      "replaces the spec's adapter. Unset = the spec's adapter.")
    adapter_version: str | None = Field(default=None, description="Version recorded with each prediction; unset = "
                                        "the spec's (none when adapter_path replaces its adapter).")
    labels: tuple[str, ...] | None = Field(default=None, description="Class names in head order. With path or "
                                           "adapter_path and no preset or spec file they define the labels (unset: "
                                           "those the trainer recorded with the adapter, else the checkpoint's head's); "
                                           "otherwise they must equal the spec's.")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: CUDA when visible, else CPU.")
    max_length: int = Field(default=128, gt=0, le=8192, description="Tokens per message, at most (longer ones are "
                            "cut). Set explicitly, it overrides the spec's max_length.")
    trust_remote_code: Literal[False] = Field(default=False, description="Never enabled: model code is not run.")
    preset: str | None = Field(default=None, description="A preset in models/presets (e.g. `s1` or "
                               "`minilm-lora-sst2`); unset with spec_file unset = minilm-lora-sst2.")
    follow_registry: bool = Field(
        default=False,
        description="Serve the registry's active adapter (training.adapter_name) and hot-swap on promotion.",
    )
    registry_poll_s: PositiveFloat = Field(default=30.0, description="Registry polling interval; "
                                   "Postgres LISTEN/NOTIFY wakes the daemon sooner.")
    spec_file: Path | None = Field(default=None, description="A model spec YAML file (models/README.md), instead "
                                   "of a preset.")
    cache_dir: Path | None = Field(default=None, description="Where `sentistream models prepare` keeps base "
                                   "models converted from PyPI packages (a spec's base.package), one directory "
                                   "per model file's sha256; the loader serves them from here. Unset: "
                                   "$XDG_CACHE_HOME/sentistream/models, else ~/.cache/sentistream/models.")
    adapter_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="Expected sha256 of "
                                       "the adapter's files, checked at load; unset = the spec's, if any.")
    adapters: tuple[dict[str, str], ...] | None = Field(
        default=None, description='More adapters (of the default adapter kind) on the same base: [{"name", "path", "version", "sha256"}].',
    )
    routes: tuple[dict[str, str], ...] | None = Field(
        default=None, description='Adapter per message, first match wins: [{"adapter", "source", "lang", "topic"}].',
    )
    compile: Literal["none", "default", "reduce-overhead"] = Field(
        default="none", description="torch.compile the model forward: `default`, or `reduce-overhead` (adds CUDA "
        "graphs; `default` off CUDA). Set explicitly, it overrides a spec's runtime.compile.",
    )
    overlap_host_work: bool = Field(
        default=False, description="Build the next forward pass's inputs in a background thread while the current "
        "one runs. Set explicitly, it overrides a spec's runtime.overlap_host_work.",
    )
    token_budget: PositiveInt | None = Field(
        default=None, description="Padded tokens per forward pass (batch size x padded length). Unset: the "
        "spec's runtime.token_budget, else 256 on a CPU (measured best on 2 cores) and 8192 on CUDA (3.6x the "
        "throughput of 256 on an H100).",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto", description="auto: the spec's quantization.mode; full-precision weights (mode none) run "
        "under bf16 autocast (matmuls in bf16, norms and softmax in fp32) where the hardware computes bf16 natively "
        "(CPUs with AVX512-BF16 or AMX, CUDA GPUs that support it), except with a SpaRTA adapter (bf16 would round "
        "its merged deltas away). fp32: full precision, no autocast. bf16: bf16 weights (quantization.mode bf16).",
    )

    @field_validator("spec_file")
    @classmethod
    def _file_exists(cls, p: Path | None) -> Path | None:
        if p is not None and not p.is_file():
            raise ValueError(f"file {str(p)!r} does not exist")
        return p

    @model_validator(mode="after")
    def _one_spec(self) -> ModelSettings:
        if self.preset is not None and self.spec_file is not None:
            raise ValueError("set either preset or spec_file, not both")
        return self

    @field_validator("path", "adapter_path")
    @classmethod
    def _dir_exists(cls, p: Path | None) -> Path | None:
        if p is not None and not p.is_dir():
            raise ValueError(f"directory {str(p)!r} does not exist")
        return p


class RetrySettings(_Section):
    initial_backoff_ms: PositiveInt = 200
    max_backoff_ms: PositiveInt = 30_000
    classify_attempts: PositiveInt = 3


class ObservabilitySettings(_Section):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = Field(default="auto", description="auto: console on a TTY, else JSON.")
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=9108, ge=0, le=65535, description="/metrics, /healthz, /readyz; 0 disables.")


class TrainingSettings(_Section):
    """Trainer service, method hyperparameters and the promotion gate (defaults: MiniLM + LoRA)."""

    method: Literal["lora", "qlora", "sparta", "head"] = Field(
        default="lora", description="lora; qlora (4-bit base); sparta (random sparse deltas); head (classification head only)",
    )
    base_model: Path | None = Field(default=None, description="None: the offline MiniLM default, or the base "
                                    "of training.spec")
    spec: str | None = Field(
        default=None, description="A preset name or model spec file to train an adapter for: its base (unless "
        "base_model is set) and labels; for a causal-LM head its prompt and max_length too, and the adapter "
        "learns to answer with the label words (method lora or qlora; one forward pass, as served). None: a "
        "classification head on base_model",
    )
    labels: tuple[str, ...] = ("negative", "positive")
    adapter_name: str = "default"
    adapters_dir: Path = Path("adapters")
    reports_dir: Path = Path("reports")
    max_length: int = Field(default=64, gt=0, le=8192)
    pooling: Literal["cls", "mean", "auto"] = Field(
        default="cls", description="What the classification head reads: the [CLS] state or the mean of the "
        "tokens; auto: the base's own sentence-transformers pooling (mean for MiniLM), else cls. Recorded in "
        "the adapter; the daemon serves it so",
    )
    frozen_layers: NonNegativeInt = Field(
        default=0,
        description="The embeddings and the bottom N transformer layers get no adapter; their outputs are "
        "computed once per example and reused every epoch, so each epoch costs only the layers above "
        "(lora, qlora, head). 0: adapt every layer",
    )
    lora_r: PositiveInt = 16
    lora_alpha: PositiveInt = 32
    lora_dropout: float = Field(default=0.1, ge=0, lt=1)
    target_modules: tuple[str, ...] | Literal["all-linear"] = "all-linear"
    # Trained in full and saved with the adapter, so the classification head survives a reload.
    modules_to_save: tuple[str, ...] = ("classifier", "pooler")
    qlora_compute_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="bfloat16", description="qlora: dtype the 4-bit weights are dequantized to for matmuls")
    sparta_sparsity: float = Field(
        default=0.99, gt=0, lt=1, description="sparta: fraction of each target weight's entries kept frozen")
    sparta_target_modules: tuple[str, ...] = Field(
        default=("value", "attention.output.dense", "v_proj", "o_proj"), min_length=1,
        description="sparta: modules (name or dotted suffix) whose weights get sparse trainable entries")
    learning_rate: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.01
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    batch_size: PositiveInt = 32
    grad_accum: PositiveInt = 1
    epochs: PositiveFloat = 3.0
    # "auto": inverse class frequency (sklearn "balanced"); "none": plain CE; else one weight per label.
    class_weights: Literal["auto", "none"] | tuple[float, ...] = "auto"
    eval_every_steps: NonNegativeInt = Field(default=0, description="0: evaluate once per epoch")
    early_stopping_patience: NonNegativeInt = 2
    # best: keep the state with the best validation metric; last: keep the final (annealed) state.
    keep: Literal["best", "last"] = "best"
    max_train_seconds: PositiveFloat | None = None
    ema_decay: float = Field(
        default=0.0, ge=0, lt=1,
        description="Evaluate and save an exponential moving average of the trainable weights with this "
        "decay per step (0.998 trained the shipped SST-2 adapter); 0: the trained weights themselves",
    )
    val_fraction: float = Field(default=0.05, gt=0, lt=0.5)
    seed: int = 13
    warm_start: bool = False
    # 0: train on every label. Else the newest window_labels labels plus replay_labels older ones
    # sampled at random, so a refit costs the same however many labels have piled up.
    window_labels: NonNegativeInt = 0
    replay_labels: NonNegativeInt = 0
    # bf16 autocast: ~2x faster matmuls on CPUs with AVX512-BF16/AMX; the adapter is saved in fp32.
    precision: Literal["fp32", "bf16"] = "fp32"
    threads: PositiveInt | None = Field(default=None, description="torch CPU threads; None: torch's default")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where the trainer and the gate's evaluations run; auto: CUDA when one is visible",
    )
    # Gate: the gold set is a stable hash slice of message ids, never trained on.
    gold_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    gold_labelers: tuple[str, ...] = Field(
        default=(), description="Trusted labelers: when set, the gold set holds only their labels; other labels "
        "on gold-slice messages are ignored. Empty: every label in the gold slice is gold.",
    )
    primary_metric: Literal["macro_f1", "accuracy", "balanced_accuracy", "weighted_f1", "mcc"] = Field(
        default="macro_f1", description="What the trainer keeps its best weights by and the gate compares",
    )
    promote_margin: NonNegativeFloat = 0.0
    recall_tolerance: float = Field(default=0.02, ge=0, le=1)
    label_noise_tolerance: float = Field(
        default=0.15, ge=0, le=1,
        description="Reject a refit when the active adapter contradicts the new labels more often than its "
        "gold-set error rate plus this much (a sign of noisy labels); 1 disables the check.",
    )
    # Trainer loop.
    interval_s: PositiveFloat = 300.0
    min_new_labels: PositiveInt = 200
    labels_topic: str = "sentistream.labels"
    notify_channel: str = Field(default="sentistream_adapters", pattern=r"^[a-z_][a-z0-9_]*$")

    @field_validator("gold_labelers")
    @classmethod
    def _labeler_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if any(not n.strip() for n in names):
            raise ValueError("labeler names must not be empty")
        return names


class ConsoleSettings(_Section):
    """The analyst console (``sentistream console``): a web application on the same database."""

    host: str = Field(default="127.0.0.1", description="Address the console listens on; 0.0.0.0 exposes it.")
    port: int = Field(default=8090, ge=1, le=65535, description="TCP port of the console's pages and /metrics.")
    secret_key: SecretStr | None = Field(default=None, description="Signs the session cookies (secret: never "
                                         "logged). Unset: a random key per process, so sessions end at restart.")
    session_max_age_s: PositiveInt = Field(default=8 * 3600, description="A login lasts this long.")
    login_attempts_per_minute: PositiveInt = Field(default=5, description="Failed logins per user and address "
                                                   "in one minute before further tries get HTTP 429.")
    refresh_s: PositiveFloat = Field(default=10.0, description="How often the live view fetches new numbers.")
    daemon_metrics_url: str | None = Field(default=None, description="The daemon's /metrics URL (consumer lag "
                                           "on the live view); unset or unreachable: shown as not reachable.")
    window_minutes: PositiveInt = Field(default=60, description="The recent window the live view and the drift "
                                        "check read.")
    drift_share_bound: float = Field(default=0.15, gt=0, le=1, description="Warn when a label's share in a "
                                     "source differs from its share in the active adapter's training data by "
                                     "more than this.")
    drift_confidence_bound: float = Field(default=0.1, gt=0, le=1, description="Warn when a source's mean "
                                          "confidence is this much below the active adapter's gold-set accuracy.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        protected_namespaces=(),
    )

    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    batch: BatchSettings = BatchSettings()
    model: ModelSettings = ModelSettings()
    retry: RetrySettings = RetrySettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    training: TrainingSettings = TrainingSettings()
    console: ConsoleSettings = ConsoleSettings()
    shutdown_timeout_s: PositiveFloat = Field(default=30.0, description="SIGTERM: time to finish in-flight batches.")
    data_dir: Path | None = Field(default=None, description="Datasets, e.g. ../shared/data")

    @field_validator("data_dir", mode="before")
    @classmethod
    def _empty_data_dir_is_unset(cls, v: object) -> object:
        return None if v == "" else v  # `SENTISTREAM_DATA_DIR=` means none, not the current folder

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, CommaListEnvSource(settings_cls)]
        path = os.environ.get(CONFIG_FILE_ENV)
        if path:
            suffix = Path(path).suffix.lower()
            if suffix in (".yaml", ".yml"):
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            elif suffix == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def unknown_env_warnings(environ: Mapping[str, str]) -> list[str]:
    """A line for each ``SENTISTREAM_*`` variable that is not a setting but looks like a misspelt one
    (pydantic-settings ignores it). The CLI host logs them once logging is configured."""
    return _unknown_env_warnings(environ, Settings)


def load_settings(**overrides: Any) -> Settings:
    """Read settings once. Every problem is one line of a :class:`ConfigError`, under the place the value
    came from (a variable or the config file's key)."""
    environ = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}
    path = os.environ.get(CONFIG_FILE_ENV)
    file_data = read_config_file(Path(path)) if path else {}
    sources = Sources(environ, Path(path) if path else None, file_data)
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(describe_errors(e, Settings, sources)) from None
    except SettingsError as e:  # an environment value pydantic-settings could not decode
        raise ConfigError("invalid setting " + ("\n  ".join(undecodable_env(Settings, sources)) or str(e))) from None
