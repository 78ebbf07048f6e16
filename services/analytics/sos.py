"""State of Safety (SoS): seven Cabrera-Castillo factors per rack sample, multiplied.

Each factor is f(h) = 1 on the safe side of h_m, else 1 / (1 + a (h - h_m)^2) with
a = (1/ζ - 1) / (h_ζ - h_m)^2 and ζ = 0.8, so f(h_m) = 1 and f(h_ζ) = ζ. The parameters
come from the site's protection map: h_ζ is the warning limit and h_m is chosen so that
the fault limit maps to ζ^4 = 0.4096, i.e. (h_fault - h_m) / (h_ζ - h_m) = R with
R = sqrt((ζ^-4 - 1) / (ζ^-1 - 1)) ≈ 2.4012. This reproduces the original's voltage and
current constants (4.014, 3.34, 0.158, 85.75); its temperature constants were hand-tuned
and land near ζ^5 at the fault limit, ours put every factor at exactly ζ^4 there (h_m
46.43 °C, 7.14 °C and 16.43 °C for the default map).

Unlike the original, the current factor judges the absolute rack current (charge and
discharge alike) and every sample keeps its own timestamp. Levels: SoS ≥ ζ safe,
ζ^4 ≤ SoS < ζ warning, below ζ^4 unsafe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.core.errors import ConfigError
from services.protection.maps import ProtectionMap

ZETA = 0.8
UNSAFE_BELOW = ZETA**4  # 0.4096
FAULT_RATIO = math.sqrt((ZETA**-4 - 1.0) / (ZETA**-1 - 1.0))  # (h_fault - h_m) / (h_zeta - h_m)
LEVEL_TOLERANCE = 1e-9  # an SoS within this of a threshold counts as on it (float round-off)
LEVELS = ("safe", "warning", "unsafe")
FORMULA_VERSION = "sos-1.0"


@dataclass(frozen=True)
class FactorSpec:
    """Which input a factor judges, from which side, and the map field of its limits."""

    name: str
    input: str  # key of the input (and of the rack column in RACK_INPUT_COLUMNS)
    upper: bool  # True: unsafe above h_m (over-voltage...); False: unsafe below (under-voltage...)
    absolute: bool = False  # judge |input|


FACTORS: tuple[FactorSpec, ...] = (
    FactorSpec("over_voltage", "max_cell_voltage", upper=True),
    FactorSpec("under_voltage", "min_cell_voltage", upper=False),
    FactorSpec("voltage_unbalance", "cell_voltage_gap", upper=True),
    FactorSpec("over_current", "current", upper=True, absolute=True),
    FactorSpec("over_temperature", "max_cell_temperature", upper=True),
    FactorSpec("under_temperature", "min_cell_temperature", upper=False),
    FactorSpec("temperature_unbalance", "cell_temperature_gap", upper=True),
)
FACTOR_NAMES: tuple[str, ...] = tuple(f.name for f in FACTORS)

RACK_INPUT_COLUMNS: dict[str, str] = {
    "max_cell_voltage": "RACK_MAX_CELL_VOLTAGE",
    "min_cell_voltage": "RACK_MIN_CELL_VOLTAGE",
    "cell_voltage_gap": "RACK_CELL_VOLTAGE_GAP",
    "current": "RACK_CURRENT",
    "max_cell_temperature": "RACK_MAX_CELL_TEMPERATURE",
    "min_cell_temperature": "RACK_MIN_CELL_TEMPERATURE",
    "cell_temperature_gap": "RACK_CELL_TEMPERATURE_GAP",
}
INPUT_NAMES: tuple[str, ...] = tuple(RACK_INPUT_COLUMNS)


@dataclass(frozen=True)
class FactorParams:
    """One factor's constants (input units: V, A, °C)."""

    name: str
    input: str
    field: str  # protection-map field
    upper: bool
    absolute: bool
    h_m: float  # boundary of full safety (f = 1)
    h_zeta: float  # warning limit (f = ζ)
    h_fault: float  # fault limit (f = ζ^4)
    a: float

    def evaluate(self, values: np.ndarray) -> np.ndarray:
        """f(h) for an array of inputs; NaN stays NaN."""
        x = np.asarray(values, dtype=float)
        if self.absolute:
            x = np.abs(x)
        d = x - self.h_m
        unsafe = d > 0 if self.upper else d < 0
        out = np.where(unsafe, 1.0 / (1.0 + self.a * d * d), 1.0)
        return np.where(np.isnan(x), np.nan, out)

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "input": self.input, "field": self.field,
                "side": "above" if self.upper else "below", "absolute": self.absolute,
                "h_m": self.h_m, "h_zeta": self.h_zeta, "h_fault": self.h_fault, "a": self.a}


@dataclass(frozen=True)
class SosParameters:
    factors: tuple[FactorParams, ...]
    map_version: str

    @property
    def version(self) -> str:
        """Formula version plus the protection map's: a new map means new numbers."""
        return f"{FORMULA_VERSION}+map:{self.map_version}"

    def factor(self, name: str) -> FactorParams:
        return next(f for f in self.factors if f.name == name)

    def as_dict(self) -> dict[str, object]:
        return {"version": self.version, "zeta": ZETA, "unsafe_below": UNSAFE_BELOW, "fault_ratio": FAULT_RATIO,
                "levels": {"safe": f">= {ZETA}", "warning": f">= {UNSAFE_BELOW} and < {ZETA}",
                           "unsafe": f"< {UNSAFE_BELOW}"},
                "factors": [f.as_dict() for f in self.factors]}


def make_factor(spec: FactorSpec, field: str, h_zeta: float, h_fault: float) -> FactorParams:
    """Constants of one factor from its warning and fault limits (h_m by the ζ^4 rule)."""
    if (h_fault <= h_zeta) if spec.upper else (h_fault >= h_zeta):
        raise ConfigError(f"{field}: the fault limit {h_fault} must lie beyond the warning limit {h_zeta}")
    h_m = (FAULT_RATIO * h_zeta - h_fault) / (FAULT_RATIO - 1.0)
    a = (1.0 / ZETA - 1.0) / (h_zeta - h_m) ** 2
    return FactorParams(spec.name, spec.input, field, spec.upper, spec.absolute, h_m, h_zeta, h_fault, a)


def sos_parameters(pmap: ProtectionMap) -> SosParameters:
    """The seven factors of a site from its protection map (rack limits).

    Raises ConfigError naming the field when the map lacks a warning or fault limit."""
    factors = []
    for spec in FACTORS:
        field = RACK_INPUT_COLUMNS[spec.input]
        limit = pmap.limit("rack", field)
        side = "above" if spec.upper else "below"
        warning = getattr(limit, f"warning_{side}", None) if limit else None
        fault = getattr(limit, f"fault_{side}", None) if limit else None
        if warning is None or fault is None:
            raise ConfigError(f"{pmap.source}: rack.{field} needs a warning and a fault limit {side} for SoS")
        factors.append(make_factor(spec, field, warning, fault))
    return SosParameters(tuple(factors), pmap.version)


def level_codes(sos: np.ndarray) -> np.ndarray:
    """0 safe, 1 warning, 2 unsafe (-1 where SoS is NaN)."""
    s = np.asarray(sos, dtype=float)
    codes = np.where(s >= ZETA - LEVEL_TOLERANCE, 0, np.where(s >= UNSAFE_BELOW - LEVEL_TOLERANCE, 1, 2))
    return np.where(np.isnan(s), -1, codes)


def compute_sos(inputs: Mapping[str, np.ndarray] | pd.DataFrame, params: SosParameters) -> pd.DataFrame:
    """Per sample: the seven factors, `sos_score` (their product) and `level` (0/1/2).

    `inputs` holds one array per input name (INPUT_NAMES), all the same length; a missing
    input (NaN) makes its factor and the score NaN (level -1)."""
    out = {}
    for p in params.factors:
        out[p.name] = p.evaluate(np.asarray(inputs[p.input], dtype=float))
    frame = pd.DataFrame(out)
    score = np.prod(np.column_stack([frame[n].to_numpy() for n in FACTOR_NAMES]), axis=1)
    frame["sos_score"] = score
    frame["level"] = level_codes(score)
    return frame


def bucket_minimum(frame: pd.DataFrame, width_s: int, origin_s: int = 0) -> pd.DataFrame:
    """The worst moment of each (bank_id, rack_id, bucket): the row with the lowest
    `sos_score` (earliest on ties), with `time` = bucket start and `sample_time` = its
    own time. `frame` needs `t` (epoch s), bank_id, rack_id and sos_score; rows with a
    NaN score are ignored."""
    f = frame.loc[frame["sos_score"].notna()].copy()
    f["time"] = origin_s + (f["t"].to_numpy() - origin_s) // width_s * width_s
    f = f.sort_values(["bank_id", "rack_id", "time", "sos_score", "t"], kind="mergesort")
    worst = f.drop_duplicates(["bank_id", "rack_id", "time"], keep="first")
    return worst.rename(columns={"t": "sample_time"}).reset_index(drop=True)
