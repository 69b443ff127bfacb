"""The validated, typed form of an inventory and its workload specs.

Everything here is a frozen value: parsing and validation build it, planning and rendering
only read it. Locations (`file`, `line`) are kept so later stages can still point at the
spec that produced something.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from hostctl.spec.secrets import SecretStore

if TYPE_CHECKING:  # the gateway section's own module defines it (and imports this one)
    from hostctl.spec.sections.gateway import GatewayConfig
    from hostctl.spec.sections.jobs import JobsConfig
    from hostctl.spec.sections.k3s import K3sConfig
    from hostctl.spec.sections.logging import LoggingConfig
    from hostctl.spec.sections.metrics import MetricsConfig
    from hostctl.spec.sections.projects import ProjectsConfig

SERVICE: Literal["service"] = "service"
JOB: Literal["job"] = "job"


@dataclass(frozen=True)
class SSHSettings:
    user: str = "root"
    port: int = 22
    key: str | None = None
    host: str | None = None  # connect here instead of the host's address (bastions, NAT)
    connect_timeout: float = 10.0
    known_hosts: str | None = None  # hostctl's own known_hosts file (default: its state dir)
    persist: float = 0.0  # keep the connection this long after a command (0: close at once)


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    ssh: SSHSettings = field(default_factory=SSHSettings)
    labels: dict[str, str] = field(default_factory=dict)
    gpus: int = 0
    # "env" (test hosts without NVIDIA): a run's leased device ids reach the container in
    # HOSTCTL_GPU_DEVICES instead of `--gpus`, so the lease and queue path runs anyway.
    gpu_mode: str = "nvidia"
    docker: str = "/usr/bin/docker"
    line: int = 0
    # Each device as (id, model): `gpus: [{model: l4, count: 2}]` or `{devices: [0, 1]}`; a
    # plain count numbers its devices 0.. without a model (""). `gpus` stays their number.
    gpu_devices: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        if self.gpu_devices and not self.gpus:
            object.__setattr__(self, "gpus", len(self.gpu_devices))
        elif self.gpus and not self.gpu_devices:
            object.__setattr__(self, "gpu_devices", tuple((i, "") for i in range(self.gpus)))

    def gpus_of(self, models: tuple[str, ...]) -> int:
        """How many of its devices are of one of `models` (all of them when none is asked)."""
        if not models:
            return self.gpus
        return sum(1 for _, model in self.gpu_devices if model in models)

    def gpu_models(self) -> dict[str, int]:
        """Its GPU models and how many devices of each ("" for devices without a model)."""
        out: dict[str, int] = {}
        for _, model in self.gpu_devices:
            out[model] = out.get(model, 0) + 1
        return out

    @property
    def ssh_address(self) -> str:
        return self.ssh.host or self.address


@dataclass(frozen=True)
class Profile:
    cpus: float | None = None
    memory: int | None = None
    gpus: int = 0
    gpu_models: tuple[str, ...] = ()  # `gpu_model:` acceptable models (none: any)


@dataclass(frozen=True)
class SecretsConfig:
    env_file: str | None = None
    env_prefix: str | None = None


def _k3s_defaults() -> K3sConfig:
    # imported here: keeps hostctl --help and start-up fast (the section's schema brings YAML)
    from hostctl.spec.sections.k3s import K3sConfig

    return K3sConfig()


def _jobs_defaults() -> JobsConfig:
    # imported here: keeps hostctl --help and start-up fast (as _k3s_defaults)
    from hostctl.spec.sections.jobs import JobsConfig

    return JobsConfig()


def _projects_defaults() -> ProjectsConfig:
    # imported here: keeps hostctl --help and start-up fast (as _k3s_defaults)
    from hostctl.spec.sections.projects import ProjectsConfig

    return ProjectsConfig()


@dataclass(frozen=True)
class Inventory:
    file: str
    site: str
    hosts: dict[str, Host]
    ssh: SSHSettings = field(default_factory=SSHSettings)
    profiles: dict[str, Profile] = field(default_factory=dict)
    specs: tuple[str, ...] = ()
    secrets: SecretsConfig = field(default_factory=SecretsConfig)
    image_source: str = "pull"
    gateway: GatewayConfig | None = None
    logging: LoggingConfig | None = None  # None: containers log to journald
    metrics: MetricsConfig | None = None  # None: no exporter
    # Every section is a typed value (the loader checks each with its schema, once); a site
    # without a k3s section has its defaults.
    k3s: K3sConfig = field(default_factory=_k3s_defaults)
    jobs: JobsConfig = field(default_factory=_jobs_defaults)
    # No section: no project has limits (an empty ProjectsConfig).
    projects: ProjectsConfig = field(default_factory=_projects_defaults)
    lines: dict[str, int] = field(default_factory=dict)  # top-level key -> line


@dataclass(frozen=True)
class Port:
    container: int
    host: int | None = None  # published on the host; instance i gets host + i
    protocol: str = "tcp"
    bind: str | None = None  # publish on this host address only (e.g. 127.0.0.1)


@dataclass(frozen=True)
class Volume:
    source: str  # an absolute host path, or a volume name (scoped to the project)
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Resources:
    cpus: float | None = None
    memory: int | None = None
    gpus: int = 0
    gpu_models: tuple[str, ...] = ()  # `gpu_model:` acceptable models (none: any)
    profile: str | None = None


@dataclass(frozen=True)
class HttpCheck:
    port: str
    path: str = "/"


@dataclass(frozen=True)
class TcpCheck:
    port: str


@dataclass(frozen=True)
class Health:
    http: HttpCheck | None = None
    tcp: TcpCheck | None = None
    command: tuple[str, ...] | None = None
    interval: float = 10.0
    timeout: float = 5.0
    retries: int = 3
    start_period: float = 0.0

    @property
    def port(self) -> str | None:
        check = self.http or self.tcp
        return check.port if check else None


@dataclass(frozen=True)
class Placement:
    hosts: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RateLimit:
    second: int | None = None
    minute: int | None = None
    hour: int | None = None
    day: int | None = None


@dataclass(frozen=True)
class Cors:
    origins: tuple[str, ...] = ("*",)
    methods: tuple[str, ...] = ()  # () = Kong's default list
    headers: tuple[str, ...] = ()
    exposed_headers: tuple[str, ...] = ()
    credentials: bool = False
    max_age: float | None = None


@dataclass(frozen=True)
class Timeouts:
    connect: float = 60.0  # Kong's defaults
    read: float = 60.0
    write: float = 60.0


@dataclass(frozen=True)
class Route:
    paths: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    port: str | None = None
    strip_path: bool = True
    auth: str = "none"
    rate_limit: RateLimit | None = None
    allow_projects: tuple[str, ...] = ()
    max_body: int | None = None  # bytes; larger request bodies get 413
    cors: Cors | None = None
    timeouts: Timeouts | None = None


@dataclass(frozen=True)
class Workload:
    """A service or a job, as its spec says, with its defaults filled in."""

    kind: str
    name: str
    project: str
    image: str
    file: str = ""  # as shown in messages (relative to the working directory)
    source: str = ""  # relative to the inventory: what rendered files mention, cwd-independent
    line: int = 0
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    ports: dict[str, Port] = field(default_factory=dict)
    volumes: tuple[Volume, ...] = ()
    resources: Resources = field(default_factory=Resources)
    health: Health | None = None
    placement: Placement = field(default_factory=Placement)
    instances: int = 1
    restart: str = "always"
    route: Route | None = None
    reach: tuple[str, ...] = ()  # other projects whose networks this service joins
    image_source: str | None = None
    stop_timeout: float = 10.0
    timeout: float | None = None
    retries: int = 0
    schedule: str | None = None
    shards: int = 1
    report: tuple[str, ...] = ()  # jobs: metric names the exporter publishes (last values)
    lines: dict[str, int] = field(default_factory=dict)  # key path "a/b" -> line, for errors

    @property
    def is_job(self) -> bool:
        return self.kind == JOB


@dataclass(frozen=True)
class Site:
    """An inventory with its workloads and secrets: everything needed to plan."""

    inventory: Inventory
    workloads: tuple[Workload, ...]
    secrets: SecretStore

    @property
    def services(self) -> tuple[Workload, ...]:
        return tuple(w for w in self.workloads if not w.is_job)

    @property
    def jobs(self) -> tuple[Workload, ...]:
        return tuple(w for w in self.workloads if w.is_job)
