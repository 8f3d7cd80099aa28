"""The configuration file: where it is, what it says, what it may say, and editing it in place.

TOML through tomlkit, so `config set` keeps comments, order and formatting. Secret values are
references (`env:NAME`, `file:PATH`) resolved only when a command needs them.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgectl.errors import ConfigError, UsageError

CONFIG_FILENAME = "edgectl.toml"
EXAMPLE_FILE = Path(__file__).parent / "data" / "edgectl.example.toml"

# Names of keys whose values are credentials. Matching keys are masked by `config show`
# and draw a warning when they hold a literal value in a file others can read.
_SECRET_KEY = re.compile(
    r"(^|_)(token|secret|password|passwd|apikey|api_key|private_key|access_key|secret_key|credentials?|connection_string)$"
)


@dataclass(frozen=True)
class Setting:
    key: str
    type: str  # str | int | float | bool | duration | choice | path
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    item: str = ""  # for a table: what each of its values is (codes | code)


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in [
        Setting("defaults.output", "choice", "table", "output format when --output is not given",
                choices=("table", "json", "jsonl", "csv")),
        Setting("state.path", "path", None, "the SQLite state file (default: the user data dir)"),
        Setting("state.busy_timeout", "duration", "5s",
                "how long a command waits for another one writing the state before giving up (exit 4)"),
        Setting("nodes.health_path", "str", "/health", "health path probed when a node names none"),
        Setting("nodes.check_timeout", "duration", "2s", "time a health probe may take, all of it"),
        Setting("nodes.check_concurrency", "int", 100, "health probes in flight at once", minimum=1),
        Setting("nodes.fail_after", "int", 3, "consecutive failed probes that mark a node failed", minimum=1),
        Setting("nodes.recover_after", "int", 2, "consecutive good probes that bring a failed node back", minimum=1),
        Setting("nodes.heartbeat_interval", "duration", "30s",
                "how often node agents report; three missed intervals mark a node stale"),
        Setting("routing.geoip_db", "path", None, "a MaxMind-format database (GeoLite2-City.mmdb) for IP locations"),
        Setting("routing.strategy", "choice", "weighted", "how resolve chooses among a rule's nodes",
                choices=("weighted", "geo", "latency", "least_loaded", "round_robin", "capability", "adaptive")),
        Setting("routing.window", "duration", "15m", "how far back resolve reads latency and load"),
        Setting("routing.regions", "table", {}, "named sets of countries for rules: dach = [\"DE\", \"AT\", \"CH\"]",
                item="codes"),
        Setting("routing.jurisdictions", "table", {}, "a country's jurisdiction where it is not the built-in one: "
                "CH = \"eu\"", item="code"),
        Setting("routing.compliance", "table", {}, "the jurisdictions a source's traffic must stay in: DE = [\"eu\"]",
                item="codes"),
        Setting("analytics.latency_target", "duration", "100ms",
                "the latency clients should see to their nearest node (p95); recommendations measure against it"),
        Setting("analytics.hit_ratio_target", "float", 0.9, "the cache hit ratio to keep above (0 to 1)",
                minimum=0, maximum=1),
        Setting("analytics.cpu_high", "float", 80.0, "a node's cpu p95 (percent) above which its load is too high",
                minimum=0, maximum=100),
        Setting("analytics.retention.raw", "duration", "7d",
                "how long raw samples are kept (dropped an hour at a time; `state prune`, and after ingests)"),
        Setting("analytics.retention.minute", "duration", "30d", "how long minute rollups are kept"),
        Setting("analytics.retention.hour", "duration", "400d", "how long hour rollups are kept (at least the minutes')"),
        Setting("analytics.retention.day", "duration", "1825d",
                "how long day rollups are kept (at least the hours'; at most ten years)"),
    ]
}

# Tables whose keys are names chosen by the user; their contents are checked by kind.
_NAMED_TABLES = ("providers",)


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    message: str
    severity: str = "error"  # error | warning

    def to_record(self) -> dict:
        return {"severity": self.severity, "file": self.file, "key": self.key, "message": self.message}


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key.rsplit(".", 1)[-1].lower()))


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and (value.startswith("env:") or value.startswith("file:"))


def find_config_path(explicit: str | None, cwd: Path | None = None) -> tuple[Path, str]:
    """The config file to use and why: 'option', 'project' (edgectl.toml upward) or 'user'."""
    if explicit:
        return Path(explicit).expanduser(), "option"
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate, "project"
    from platformdirs import user_config_dir

    return Path(user_config_dir("edgectl")) / "config.toml", "user"


def _plain(value: Any) -> Any:
    """tomlkit items to plain Python values."""
    if hasattr(value, "unwrap"):
        return value.unwrap()
    return value


def _deep_merge(base: dict, over: dict) -> dict:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def lookup(data: dict, key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


class Config:
    """A loaded config file (possibly absent) with one profile applied."""

    def __init__(self, path: Path, source: str, profile: str | None = None):
        self.path = path
        self.source = source
        self.profile = profile
        self.exists = path.is_file()
        self.document = self._parse() if self.exists else None
        raw = _plain(self.document) if self.document is not None else {}
        self.raw: dict = raw
        self.data = self._overlay(raw, profile)

    def _parse(self):
        import tomlkit
        from tomlkit.exceptions import ParseError

        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {self.path}: {exc}") from None
        try:
            return tomlkit.parse(text)
        except ParseError as exc:
            raise ConfigError(f"{self.path}: not valid TOML: {exc}", hint="fix the file, or run edgectl config validate") from None

    def _overlay(self, raw: dict, profile: str | None) -> dict:
        base = {k: v for k, v in raw.items() if k != "profiles"}
        if not profile:
            return base
        profiles = raw.get("profiles") or {}
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none defined"
            raise ConfigError(f"profile {profile!r} is not in {self.path}", hint=f"profiles: {known}")
        return _deep_merge(base, profiles[profile])

    # ---- reading ----------------------------------------------------------
    def get(self, key: str) -> Any:
        """The effective value: the file (with the profile applied), else the setting's default."""
        try:
            return lookup(self.data, key)
        except KeyError:
            if key in SETTINGS:
                return SETTINGS[key].default
            raise

    def setting(self, key: str) -> Any:
        """A known setting, checked and converted to its type (durations in seconds)."""
        spec = SETTINGS[key]
        value = self.get(key)
        problem = _check_value(spec, value) if value is not None else None
        if problem:
            where = f"[profiles.{self.profile}] " if self.profile else ""
            raise ConfigError(f"{self.path}: {where}{key}: {problem}", hint="edgectl config validate lists every problem")
        if spec.type == "duration" and value is not None:
            from edgectl.parse import parse_duration

            try:
                return parse_duration(value, what=key)
            except UsageError as exc:
                raise ConfigError(f"{self.path}: {exc.message}") from None
        return value

    def section(self, name: str) -> dict:
        value = self.data.get(name)
        return value if isinstance(value, dict) else {}

    def resolve_secret(self, key: str, value: str) -> str:
        return resolve_secret(value, key=key, base=self.path.parent)

    def masked(self) -> dict:
        return mask_secrets(self.data)

    def warnings(self) -> list[str]:
        """Literal secrets in a file that group or others can read."""
        if not self.exists:
            return []
        mode = self.path.stat().st_mode
        if not mode & (stat.S_IRWXG | stat.S_IRWXO):
            return []
        literal = [key for key, value in _walk(self.raw) if is_secret_key(key) and isinstance(value, str)
                   and value and not is_reference(value)]
        return [
            f"{self.path}: {key} holds a literal secret and the file is readable by others "
            f"(mode {stat.S_IMODE(mode):o}); use env:NAME or file:PATH"
            for key in literal
        ]


def _walk(data: dict, prefix: str = ""):
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _walk(value, dotted + ".")
        else:
            yield dotted, value


def mask_secrets(data: Any, key: str = "") -> Any:
    if isinstance(data, dict):
        return {k: mask_secrets(v, f"{key}.{k}" if key else k) for k, v in data.items()}
    if is_secret_key(key) and isinstance(data, str) and data and not is_reference(data):
        return "********"
    return data


def resolve_secret(value: str, *, key: str, base: Path | None = None) -> str:
    """Turn 'env:NAME' or 'file:PATH' into the secret; a literal is returned as it is."""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: a secret must be a string reference such as env:NAME")
    from edgectl.logs import register_secret

    scheme, _, rest = value.partition(":")
    if scheme == "env":
        secret = os.environ.get(rest)
        if not secret:
            raise ConfigError(f"{key}: environment variable {rest} is not set", hint=f"export {rest}=... before running edgectl")
    elif scheme == "file":
        path = Path(rest).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{key}: cannot read secret file {path}: {exc.__class__.__name__}") from None
        if not secret:
            raise ConfigError(f"{key}: secret file {path} is empty")
    else:
        secret = value
    if secret != secret.strip():
        raise ConfigError(f"{key}: the secret starts or ends with whitespace",
                          hint="no HTTP header may carry it; remove the spaces where it is set")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in secret):
        raise ConfigError(f"{key}: the secret holds a line break or control character",
                          hint="a secret file should hold the secret alone, on one line")
    register_secret(secret)
    return secret


# ---- validation -------------------------------------------------------------

def _check_value(spec: Setting, value: Any) -> str | None:
    if spec.type in ("str", "path", "choice"):
        if not isinstance(value, str):
            return f"expected a string, got {type(value).__name__}"
        if spec.type == "choice" and value not in spec.choices:
            return f"{value!r} is not one of {', '.join(spec.choices)}"
    elif spec.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {type(value).__name__}"
        if spec.minimum is not None and value < spec.minimum:
            return f"must be at least {spec.minimum:g}"
    elif spec.type == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return f"expected a number, got {type(value).__name__}"
        if spec.minimum is not None and value < spec.minimum:
            return f"must be at least {spec.minimum:g}"
        if spec.maximum is not None and value > spec.maximum:
            return f"must be at most {spec.maximum:g}"
    elif spec.type == "bool":
        if not isinstance(value, bool):
            return "expected true or false"
    elif spec.type == "table":
        if not isinstance(value, dict):
            return "expected a table"
        for name, item in value.items():
            if spec.item == "codes" and not (isinstance(item, list) and item and all(isinstance(v, str) for v in item)):
                return f"{name}: expected a list of codes, e.g. [\"DE\", \"AT\"]"
            if spec.item == "code" and not isinstance(item, str):
                return f"{name}: expected a code in quotes, e.g. \"eu\""
    elif spec.type == "duration":
        from edgectl.parse import parse_duration

        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return "expected a duration such as '2s' or '5m'"
        try:
            parse_duration(str(value))
        except UsageError:
            return f"{value!r} is not a duration (use e.g. 500ms, 2s, 5m, 24h)"
    return None


def _validate_table(data: dict, file: str, prefix: str, problems: list[Problem]) -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key in _NAMED_TABLES and not prefix:
            _validate_named(key, value, file, problems)
            continue
        if isinstance(value, dict) and not (dotted in SETTINGS and SETTINGS[dotted].type == "table"):
            if not any(s.startswith(dotted + ".") for s in SETTINGS):
                problems.append(Problem(file, dotted, _unknown_in_table(prefix, key)))
                continue
            _validate_table(value, file, dotted + ".", problems)
            continue
        spec = SETTINGS.get(dotted)
        if spec is None:
            problems.append(Problem(file, dotted, _unknown_in_table(prefix, key)))
            continue
        message = _check_value(spec, value)
        if message:
            problems.append(Problem(file, dotted, message))


def unknown_setting(key: str) -> str:
    """A whole dotted key that is no setting, as `config set` is given it."""
    from edgectl.parse import unknown_setting as unknown

    return unknown(key, SETTINGS)


def _unknown_in_table(prefix: str, key: str) -> str:
    """A key of one table that is no setting: the name meant in that table, else the setting elsewhere
    with that name (`output` at the top means `defaults.output`), else what the table holds."""
    from edgectl.parse import closest_name, unknown_setting as unknown

    here = {s[len(prefix):].split(".", 1)[0] for s in SETTINGS if s.startswith(prefix)}
    if not prefix:
        here |= {*_NAMED_TABLES, "profiles"}
    meant = closest_name(key, here)
    if meant is None:
        moved = [s for s in SETTINGS if s.rsplit(".", 1)[-1] == key.lower()]
        meant = moved[0] if len(moved) == 1 else closest_name(prefix + key, SETTINGS)
    return unknown(key, here, where=f" in [{prefix[:-1]}]" if prefix else "", meant=meant)


def _validate_named(section: str, value: Any, file: str, problems: list[Problem]) -> None:
    from edgectl.parse import parse_name

    if not isinstance(value, dict):
        problems.append(Problem(file, section, "expected a table of named entries"))
        return
    for name, entry in value.items():
        dotted = f"{section}.{name}"
        try:
            parse_name(name, what=f"{section[:-1]} name")
        except UsageError as exc:
            problems.append(Problem(file, dotted, exc.message))
        if not isinstance(entry, dict):
            problems.append(Problem(file, dotted, "expected a table"))
            continue
        if not isinstance(entry.get("kind"), str):
            problems.extend(_kindless_problems(dotted, entry, file))
        else:
            problems.extend(_provider_problems(dotted, entry, file))
        for key, item in _walk(entry, dotted + "."):
            if is_secret_key(key) and isinstance(item, str) and item.startswith("env:"):
                if not re.match(r"^env:[A-Za-z_][A-Za-z0-9_]*$", item):
                    problems.append(Problem(file, key, f"{item!r} does not name an environment variable"))


def _provider_problems(dotted: str, entry: dict, file: str) -> list[Problem]:
    """A provider table checked by its own kind (whose module imports no SDK to do so)."""
    from edgectl.parse import closest_name
    from edgectl.providers.registry import available_kinds, provider_class

    try:
        cls = provider_class(entry["kind"])
    except UsageError as exc:
        kinds = available_kinds()
        meant = closest_name(entry["kind"], kinds) if entry["kind"] not in kinds else None
        hint = f"did you mean {meant!r}?" if meant else exc.hint
        return _kindless_problems(dotted, entry, file, f"{exc.message} ({hint})" if hint else exc.message)
    found = []
    for line in cls.check_settings(entry):
        key, _, message = line.partition(": ")
        found.append(Problem(file, f"{dotted}.{key}", message or line))
    return found


def _kind_classes() -> dict:
    """Every installed provider kind that loads, by name (a broken plugin is reported elsewhere)."""
    from edgectl.providers.registry import available_kinds, provider_class

    classes = {}
    for kind in sorted(available_kinds()):
        try:
            classes[kind] = provider_class(kind)
        except UsageError:
            continue
    return classes


def _kindless_problems(dotted: str, entry: dict, file: str, kind_problem: str | None = None) -> list[Problem]:
    """A provider table whose kind is missing or unknown: the kind first, then each key no installed kind takes.

    Keys that some installed kind takes are not reported: they tell which kind the table is meant as.
    """
    from edgectl.parse import unknown_setting as unknown
    from edgectl.providers.base import Provider

    classes = _kind_classes()
    own = {kind: set(cls.required_settings) | set(cls.optional_settings) for kind, cls in classes.items()}
    known = set(Provider.common_settings).union(*own.values())
    present = [key for key in entry if key not in Provider.common_settings and key in known]
    fits = [kind for kind, names in own.items() if present and all(key in names for key in present)]
    if fits and len(fits) < len(own):
        why = f"; its settings fit kind {' or '.join(repr(kind) for kind in fits)}"
    else:
        why = f" (installed kinds: {', '.join(own) or 'none'})"
    found = [Problem(file, f"{dotted}.kind", kind_problem or f"missing: every provider names its kind{why}")]
    for key in entry:
        if key not in known:
            found.append(Problem(file, f"{dotted}.{key}", unknown(key, known, Provider.setting_synonyms)))
    return found


def validate(config: Config) -> list[Problem]:
    """Every problem in the file, each naming the file and the key."""
    if not config.exists:
        return []
    file = str(config.path)
    problems: list[Problem] = []
    raw = config.raw
    _validate_table({k: v for k, v in raw.items() if k != "profiles"}, file, "", problems)
    profiles = raw.get("profiles", {})
    if not isinstance(profiles, dict):
        problems.append(Problem(file, "profiles", "expected tables [profiles.NAME]"))
    else:
        for name, overlay in profiles.items():
            if not isinstance(overlay, dict):
                problems.append(Problem(file, f"profiles.{name}", "expected a table"))
                continue
            sub: list[Problem] = []
            _validate_table(overlay, file, "", sub)
            problems.extend(Problem(p.file, f"profiles.{name}.{p.key}", p.message, p.severity) for p in sub)
    problems.extend(Problem(file, "", w, "warning") for w in config.warnings())
    return problems


# ---- editing ------------------------------------------------------------------

def convert_value(key: str, text: str) -> Any:
    """A value typed on the command line, converted to what the setting holds."""
    spec = SETTINGS.get(key)
    if spec is None:
        # free-form keys (provider settings): a TOML literal if it is one, else a string
        import tomlkit

        try:
            return _plain(tomlkit.parse(f"v = {text}")["v"])
        except Exception:
            return text
    if spec.type == "int":
        try:
            value: Any = int(text)
        except ValueError:
            raise UsageError(f"{key}: {text!r} is not an integer") from None
    elif spec.type == "float":
        try:
            value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
        except ValueError:
            raise UsageError(f"{key}: {text!r} is not a number") from None
    elif spec.type == "bool":
        lowered = text.lower()
        if lowered not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            raise UsageError(f"{key}: {text!r} is not true or false")
        value = lowered in ("true", "yes", "on", "1")
    else:
        value = text
    message = _check_value(spec, value)
    if message:
        raise UsageError(f"{key}: {message}")
    return value


def check_settable(key: str) -> None:
    parts = key.split(".")
    if key in SETTINGS:
        return
    if parts[0] in _NAMED_TABLES and len(parts) >= 3:
        from edgectl.parse import parse_name

        parse_name(parts[1], what=f"{parts[0][:-1]} name")
        return
    raise UsageError(unknown_setting(key), hint="edgectl config show lists the settings in use")


def set_value(path: Path, key: str, text: str, profile: str | None = None) -> Any:
    """Write one value, keeping the rest of the file exactly as it was."""
    import tomlkit

    check_settable(key)
    value = convert_value(key, text)
    if path.is_file():
        doc = Config(path, "option").document
    else:
        doc = tomlkit.document()
    parts = (["profiles", profile] if profile else []) + key.split(".")
    table = doc
    for part in parts[:-1]:
        if part not in table:
            table[part] = tomlkit.table(is_super_table=len(parts) > 2 and part in ("profiles", "providers"))
        table = table[part]
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: cannot set {key}: {part} is not a table")
    table[parts[-1]] = value
    write_private(path, tomlkit.dumps(doc))
    return value


def write_private(path: Path, text: str) -> None:
    """Write a file that may hold secrets: created 0600, replaced atomically (through a symlink)."""
    path = path.resolve() if path.is_symlink() else path
    if path.is_dir():
        raise UsageError(f"{path} is a directory", hint="give the path of a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o600
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def init_file(path: Path, force: bool = False) -> Path:
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="pass --force to overwrite it")
    write_private(path, EXAMPLE_FILE.read_text(encoding="utf-8"))
    return path
