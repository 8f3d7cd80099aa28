"""Jurisdictions for compliance-aware routing: where a node's data lives, and where a source's must stay."""

from __future__ import annotations

from edgectl.errors import ConfigError

# The EU's 27 member states (europa.eu, "EU countries") and the three other EEA states (Iceland,
# Liechtenstein, Norway), under whose shared rules (the GDPR among them) data may move freely.
EU_EEA = frozenset("AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO".split())


def country_jurisdictions(config) -> dict[str, str]:
    """`[routing.jurisdictions]`: country -> jurisdiction code, where it is not the built-in one."""
    from edgectl.parse import parse_country
    from edgectl.routing.rules import parse_jurisdiction

    table = config.section("routing").get("jurisdictions", {}) if config is not None else {}
    overrides = {}
    for country, code in (table or {}).items():
        try:
            overrides[parse_country(country)] = parse_jurisdiction(code)
        except Exception as exc:  # noqa: BLE001 - a UsageError, reported as the config's problem
            raise ConfigError(f"{config.path}: routing.jurisdictions.{country}: {getattr(exc, 'message', exc)}") from None
    return overrides


def of_country(country: str | None, overrides: dict[str, str]) -> str | None:
    if not country:
        return None
    if country in overrides:
        return overrides[country]
    return "eu" if country in EU_EEA else country.lower()


def of_node(node, overrides: dict[str, str]) -> str | None:
    """A node's `jurisdiction` label, else its country's; None when neither is known."""
    label = node.labels.get("jurisdiction")
    if label:
        return label.strip().lower()
    return of_country(node.country, overrides)


def compliance_for(location, config) -> list[tuple[str, list[str]]]:
    """The `[routing.compliance]` entries that bind a location: (the entry's key, its jurisdictions).

    A key is a source as a rule names it: a country (DE), a subdivision (US-CA), a continent
    (continent:EU, or EU), or a region set (region:dach, region:WEU, or the bare name).
    """
    from edgectl.routing.rules import parse_jurisdiction, region_countries

    table = config.section("routing").get("compliance", {}) if config is not None else {}
    bound = []
    for key, codes in (table or {}).items():
        kind, _, value = str(key).rpartition(":")
        value = value.strip()
        if kind == "continent" or (not kind and value.upper() in ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
                                   and value.upper() != location.country):
            applies = location.continent == value.upper()
        elif kind == "region" or (not kind and len(value) > 2 and "-" not in value):
            countries = region_countries(value, config)
            applies = bool(location.country and location.country in countries) or (
                location.kind == "cf_region" and location.code == value.upper())
        elif "-" in value:
            applies = location.subdivision == value.upper()
        else:
            applies = location.country == value.upper()
        if applies:
            try:
                bound.append((str(key), sorted({parse_jurisdiction(code) for code in codes})))
            except Exception as exc:  # noqa: BLE001 - a UsageError, reported as the config's problem
                raise ConfigError(f"{config.path}: routing.compliance.{key}: {getattr(exc, 'message', exc)}") from None
    return bound
