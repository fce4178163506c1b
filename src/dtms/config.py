"""Service settings (DTMS_* environment over the JSON file) and the validated engine config."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from dtms.domain.enums import AdoptPolicy, MarginMode, RequestKind, Timeframe, TradeMode, TradeType
from dtms.managers.exits import BreakevenRule, ExitRule
from dtms.managers.rails import CalendarError, NewsEvent, parse_news_calendar
from dtms.managers.trailing import METHODS, Strategy, StrategyRules, TrailMethod
from dtms.market.regime import Session

KNOWN_SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD", "US30")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
MIN_KEY_LENGTH = 16


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`: an address only this machine reaches."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    """A setting or config key is invalid; the message names the key and the reason."""


class Settings(BaseSettings):
    """Process settings; every field is read from DTMS_<NAME> (SPEC-api.md "Configuration")."""

    model_config = SettingsConfigDict(env_prefix="DTMS_", extra="ignore", validate_default=True)

    api_host: str = "127.0.0.1"
    api_port: int = Field(8001, ge=1, le=65535)
    home: Path = Path("./data")
    db_url: str | None = None
    account: str | None = Field(None, pattern=r"^[A-Za-z0-9@._:-]{1,64}$")
    broker: Literal["paper", "mt5"] = "paper"
    mt5_path: str | None = None
    mt5_login: int | None = None
    mt5_password: str | None = None
    mt5_server: str | None = None
    mt5_bridge_host: str | None = None
    mt5_bridge_port: int | None = Field(None, ge=1, le=65535)
    mt5_time_offset: str = "auto"
    magic: int = Field(234000, ge=0, le=2**63 - 1)
    config: Path = Path("config/dtms_config.json")
    api_key: str | None = None
    api_keys_file: Path | None = None
    auth: Literal["on", "off"] = "on"
    cors_origins: str = ""
    lock_dir: Path = Field(default_factory=lambda: platformdirs.user_state_path("dtms") / "locks")
    init_fail_grace: float = Field(30.0, ge=0)
    mode: Literal["live", "shadow"] = "live"
    retry_count: int = Field(3, ge=0, le=10)
    timeout: float = Field(5.0, gt=0)
    broker_timeout: float = Field(10.0, gt=0)
    startup_timeout: float = Field(120.0, ge=0)
    monitoring_interval: float = Field(30.0, ge=0)
    deep_check_interval: float = Field(900.0, gt=0)
    reconcile_interval: float = Field(10.0, gt=0)
    adopt_unregistered: AdoptPolicy = AdoptPolicy.ALL
    redis_url: str | None = None
    enable_metrics: bool = True
    bench_routes: bool = False
    """Mount the benchmark-only no-op routes (dtms.api.routes_bench; benchmarks/api.py)."""
    rate_limit_enabled: bool = True
    rate_limit_write_per_s: float = Field(10.0, gt=0, allow_inf_nan=False)
    rate_limit_write_burst: int = Field(100, ge=1)
    rate_limit_query_per_s: float = Field(30.0, gt=0, allow_inf_nan=False)
    rate_limit_query_burst: int = Field(200, ge=1)
    log_format: Literal["json", "console"] = "json"
    alert_telegram_token: SecretStr | None = None
    alert_telegram_chat: str | None = None
    alert_discord_webhook: SecretStr | None = None
    alert_throttle_s: float = Field(300.0, ge=0, description="wall seconds between alerts of one key")
    alert_rate_per_min: float = Field(20.0, gt=0, description="alerts a minute per channel, after a burst")
    alert_burst: int = Field(5, ge=1)
    alert_queue_size: int = Field(100, ge=1, description="alerts waiting per channel; more are dropped")
    alert_timeout: float = Field(10.0, gt=0, description="seconds per attempt to post an alert")
    paper_feed: str = "synthetic"
    paper_speed: str = "1"
    paper_seed: int = 0

    @field_validator("paper_feed")
    @classmethod
    def _feed(cls, value: str) -> str:
        if value in ("synthetic", "manual"):
            return value
        if value.startswith("replay:"):
            path = Path(value.removeprefix("replay:"))
            if not path.is_file():
                raise ValueError(f"replay file {path} does not exist")
            return value
        raise ValueError("must be 'synthetic', 'manual' or 'replay:<csv path>'")

    @field_validator("mt5_time_offset")
    @classmethod
    def _offset(cls, value: str) -> str:
        if value == "auto":
            return value
        try:
            hours = float(value)
        except ValueError as exc:
            raise ValueError(
                "must be 'auto' or the trade server's offset from UTC in hours, e.g. 2 or -5"
            ) from exc
        if not math.isfinite(hours) or abs(hours) > 14:
            raise ValueError("must be 'auto' or hours between -14 and 14")
        return value

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if len(value) < MIN_KEY_LENGTH or value != value.strip():
            raise ValueError(
                f"must be at least {MIN_KEY_LENGTH} characters without surrounding spaces (a short key is "
                "guessed); leave it unset and DTMS generates one on first start"
            )
        return value

    @field_validator("cors_origins")
    @classmethod
    def _cors(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",") if o.strip()):
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"{origin!r}: each origin is '*' or scheme://host[:port], comma-separated")
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        """The origins CORS allows; empty: CORS off (no Access-Control-* header is sent)."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @model_validator(mode="after")
    def _auth_off_on_loopback(self) -> Settings:
        if self.auth == "off" and not is_loopback(self.api_host):
            raise ValueError(
                f"DTMS_AUTH=off is refused on DTMS_API_HOST={self.api_host}: without keys the service may "
                "only listen on a loopback address (127.0.0.1, ::1 or localhost); set DTMS_API_KEY, "
                "DTMS_API_KEYS_FILE or neither (a key is generated on first start) instead"
            )
        return self

    @model_validator(mode="after")
    def _mt5(self) -> Settings:
        if self.broker == "mt5" and self.mt5_bridge_host is not None:
            if self.mt5_bridge_host not in LOOPBACK_HOSTS:
                raise ValueError(
                    "DTMS_MT5_BRIDGE_HOST must be a loopback address (127.0.0.1, ::1 or localhost): the "
                    "mt5linux bridge runs any code its caller sends, so it must not listen beyond this host"
                )
            if self.mt5_bridge_port is None:
                raise ValueError("DTMS_MT5_BRIDGE_PORT is required with DTMS_MT5_BRIDGE_HOST")
        return self

    @field_validator("alert_telegram_token", "alert_telegram_chat", "alert_discord_webhook", mode="before")
    @classmethod
    def _unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _alerts(self) -> Settings:
        if (self.alert_telegram_token is None) != (self.alert_telegram_chat is None):
            raise ValueError("DTMS_ALERT_TELEGRAM_TOKEN and DTMS_ALERT_TELEGRAM_CHAT go together")
        webhook = self.alert_discord_webhook
        if webhook is not None and not webhook.get_secret_value().startswith("https://"):
            raise ValueError("DTMS_ALERT_DISCORD_WEBHOOK must be an https:// webhook URL")
        return self

    @property
    def replay_path(self) -> Path | None:
        return (
            Path(self.paper_feed.removeprefix("replay:")) if self.paper_feed.startswith("replay:") else None
        )

    @property
    def mt5_offset_seconds(self) -> float | None:
        """The trade server's offset from UTC in seconds; None for 'auto' (measured at connect)."""
        return None if self.mt5_time_offset == "auto" else float(self.mt5_time_offset) * 3600

    @field_validator("paper_speed")
    @classmethod
    def _speed(cls, value: str) -> str:
        if value == "max":
            return value
        try:
            speed = float(value)
        except ValueError as exc:
            raise ValueError("must be a positive number or 'max'") from exc
        if not math.isfinite(speed) or speed <= 0:
            raise ValueError("must be a positive number or 'max'")
        return value

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'dtms.db'}"

    @property
    def paper_path(self) -> Path:
        return self.home / "paper_broker.db"

    @property
    def speed_factor(self) -> float | None:
        """Market seconds per wall second; None for 'max'."""
        return None if self.paper_speed == "max" else float(self.paper_speed)


TRAILING_TIMEFRAMES = (Timeframe.M1, Timeframe.M5, Timeframe.M15, Timeframe.M30, Timeframe.H1)
"""The timeframes a trailing rule may read (a strategy's, the intelligent exits'): those the market view
keeps bars of."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExitRules(_Strict):
    """Intelligent-exit values for one trade type (SPEC-engine.md "Intelligent exit manager")."""

    breakeven_trigger_r: float = Field(gt=0)
    breakeven_price_buffer_pct: float = Field(0.01, ge=0)
    partial_at_tp_fraction: float = Field(gt=0, le=1)
    partial_size_pct: float = Field(gt=0, le=100)
    trailing_atr: float = Field(gt=0)
    trailing_trend_fail_factor: float = Field(4 / 3, ge=1, description="× trailing_atr, EMA gate failed")
    trailing_trend_slope_bars: int = Field(9, ge=1, description="bars the EMA50/200 slopes span")
    trailing_min_move_pct: float = Field(0.05, ge=0, description="% of price a trailing step must gain")
    widening_atr: float = Field(1.5, gt=0, description="× ATR(widening_timeframe) from entry, × (1 + excess)")
    widening_excess_cap: float = Field(1.0, ge=0)
    widening_cap_r: float = Field(1.5, gt=0, description="farthest widened stop from entry, × R")
    widening_atr_ratio_threshold: float = Field(1.3, gt=0, description="ATR ratio above which to widen")
    widening_index_symbol: str | None = Field(None, min_length=1, description="a VIX-like index symbol")
    widening_index_threshold: float | None = Field(None, gt=0)
    trailing_timeframe: Timeframe = Field(
        Timeframe.M30, description="the trail's ATR and EMA50/200 trend gate (M30 by the spec)"
    )
    widening_timeframe: Timeframe = Field(
        Timeframe.M15, description="the widening's ATR and ATR ratio (M15 by the spec)"
    )

    @field_validator("trailing_timeframe", "widening_timeframe")
    @classmethod
    def _kept(cls, value: Timeframe) -> Timeframe:
        if value not in TRAILING_TIMEFRAMES:
            raise ValueError(f"must be one of {', '.join(TRAILING_TIMEFRAMES)} (the market view's windows)")
        return value

    @model_validator(mode="after")
    def _index(self) -> ExitRules:
        if (self.widening_index_symbol is None) != (self.widening_index_threshold is None):
            raise ValueError("widening_index_symbol and widening_index_threshold go together")
        return self

    def rule(self, default_risk_pct: float) -> ExitRule:
        """The managers' form of these values (dtms.managers.exits.propose)."""
        values = self.model_dump(exclude={"breakeven_trigger_r", "breakeven_price_buffer_pct"})
        be = BreakevenRule(self.breakeven_trigger_r, self.breakeven_price_buffer_pct, default_risk_pct)
        return ExitRule(breakeven=be, **values)


def _default_exits() -> dict[TradeType, ExitRules]:
    return {
        TradeType.INTRADAY: ExitRules(
            breakeven_trigger_r=0.3, partial_at_tp_fraction=0.6, partial_size_pct=50, trailing_atr=1.5
        ),
        TradeType.SCALP: ExitRules(
            breakeven_trigger_r=0.25, partial_at_tp_fraction=0.4, partial_size_pct=70, trailing_atr=1.0
        ),
        TradeType.WEEKEND: ExitRules(
            breakeven_trigger_r=0.25, partial_at_tp_fraction=0.5, partial_size_pct=60, trailing_atr=2.0
        ),
    }


class RiskConfig(_Strict):
    default_risk_pct: float = Field(0.5, gt=0, le=50, description="default risk without a stop, % of price")


class AdoptionConfig(_Strict):
    min_age_s: float = Field(
        30.0, ge=0, description="market seconds before an unregistered position is adopted"
    )


class SymbolOverride(_Strict):
    point: float | None = Field(None, gt=0)
    digits: int | None = Field(None, ge=0, le=10)
    tick_size: float | None = Field(None, gt=0)
    contract_size: float | None = Field(None, gt=0)
    stops_level: int | None = Field(None, ge=0)
    freeze_level: int | None = Field(None, ge=0)
    volume_min: float | None = Field(None, gt=0)
    volume_step: float | None = Field(None, gt=0)
    volume_max: float | None = Field(None, gt=0)
    spread_points: int | None = Field(None, ge=0)
    filling_modes: int | None = Field(
        None, ge=0, le=3, description="flags: 1 fill-or-kill, 2 immediate-or-cancel"
    )
    trade_mode: TradeMode | None = None


class FaultConfig(_Strict):
    """One injected fault of the paper broker (SPEC-brokers.md "Fault injection")."""

    kind: Literal[
        "requote",
        "price_changed",
        "too_many_requests",
        "frozen",
        "invalid_stops",
        "hedge_prohibited",
        "connection_lost",
        "market_closed",
        "timeout_after_execute",
        "timeout_before_execute",
        "feed_broken",
    ]
    rate: float = Field(gt=0, le=1)
    requests: list[RequestKind] = Field(default_factory=lambda: list(RequestKind), min_length=1)
    seconds: float | None = Field(None, gt=0)
    seed: int = 0

    @model_validator(mode="after")
    def _seconds(self) -> FaultConfig:
        if self.kind == "connection_lost" and self.seconds is None:
            raise ValueError("connection_lost needs 'seconds'")
        if self.kind != "connection_lost" and self.seconds is not None:
            raise ValueError("'seconds' applies to connection_lost only")
        return self


class PaperConfig(_Strict):
    """The paper broker's account and costs (all costs off by default) and faults to inject."""

    margin_mode: MarginMode = MarginMode.HEDGING
    slippage_points: int = Field(0, ge=0)
    commission_per_lot: float = Field(0.0, ge=0)
    swap_per_lot_day: float = 0.0
    delay_ms: tuple[float, float] = (0.0, 5.0)
    faults: list[FaultConfig] = Field(default_factory=list)

    @field_validator("delay_ms")
    @classmethod
    def _delay(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] <= value[1]:
            raise ValueError("must be [low, high] with 0 <= low <= high")
        return value


class RecoveryConfig(_Strict):
    re_add: bool = False


class RailsConfig(_Strict):
    """The safety rails (SPEC-engine.md "Safety rails"); the calendar path is relative to the config file."""

    daily_loss_pct: float = Field(2.0, gt=0, le=100, description="% of balance, realised + floating, UTC day")
    hourly_loss_pct: float = Field(1.0, gt=0, le=100, description="% of balance, realised + floating, hour")
    max_consecutive_stop_outs: int = Field(3, ge=1)
    news_calendar: Path | None = Field(Path("news_calendar.csv"), description="CSV time_utc,currency,...")
    news_before_min: float = Field(30.0, ge=0)
    news_after_min: float = Field(15.0, ge=0)
    spread_spike_factor: float = Field(2.0, gt=1)
    spread_min_samples: int = Field(20, ge=1, description="samples of the hour needed before a spike counts")
    stale_after_s: float = Field(300.0, gt=0, description="wall seconds without a tick while open")
    closed_recheck_s: float = Field(60.0, gt=0, description="market seconds a 10018/10021 answer holds")
    margin_level_alert_pct: float = Field(150.0, gt=0)
    watch_interval_s: float = Field(10.0, gt=0, description="wall seconds between rail sweeps (alerts)")


_STRATEGY_DEFAULTS: dict[Strategy, dict[str, Any]] = {
    Strategy.BREAKOUT_IB_VOLATILITY_TRAP: {
        "breakeven_r": 1.0,
        "breakeven_r_asia": 0.75,
        "timeframe": "M5",
        "trail_atr": 1.5,
        "partial_at_r": 1.5,
        "partial_pct": 50,
        "cooldown_s": 20,
    },
    Strategy.TREND_CONTINUATION_PULLBACK: {
        "breakeven_r": 1.0,
        "timeframe": "M5",
        "trail_atr": 0.5,
        "cooldown_s": 45,
    },
    Strategy.LIQUIDITY_SWEEP_REVERSAL: {
        "breakeven_r": 0.5,
        "timeframe": "M1",
        "trail_atr": 0.5,
        "cooldown_s": 15,
    },
    Strategy.ORDER_BLOCK_REJECTION: {
        "breakeven_r": 1.0,
        "breakeven_r_asia": 0.75,
        "timeframe": "M5",
        "trail_atr": 0.3,
        "displacement_atr": 1.5,
        "cooldown_s": 30,
    },
    Strategy.MEAN_REVERSION_RANGE_SCALP: {"breakeven_r": 0.5, "cooldown_s": 10},
    Strategy.DEFAULT_STANDARD: {"breakeven_r": 1.0, "timeframe": "M15", "trail_atr": 2.0, "cooldown_s": 60},
}
_SESSION_FACTORS = {
    Session.ASIA: 1.1,
    Session.LONDON: 0.95,
    Session.OVERLAP: 0.9,
    Session.NY: 0.9,
    Session.LATE_NY: 1.05,
}


class StrategyNumbers(_Strict):
    """One strategy's numbers (SPEC-engine.md "Strategy trailing manager"); how it trails is the strategy's
    own (dtms.managers.trailing.METHODS). A strategy given in the file is merged over its defaults."""

    breakeven_r: float = Field(gt=0)
    breakeven_r_asia: float | None = Field(None, gt=0, description="breakeven in ASIA; null: breakeven_r")
    timeframe: Timeframe | None = Field(None, description="the trailing timeframe; null: no trailing")
    trail_atr: float | None = Field(None, gt=0, description="× ATR(timeframe): the trail distance")
    displacement_atr: float | None = Field(None, gt=0, description="a displacement bar's range, × ATR")
    partial_at_r: float | None = Field(None, gt=0, description="the partial exit's trigger; null: none")
    partial_pct: float = Field(50.0, gt=0, lt=100)
    cooldown_s: float = Field(ge=0, description="market seconds between this manager's stop changes")

    @field_validator("timeframe")
    @classmethod
    def _kept(cls, value: Timeframe | None) -> Timeframe | None:
        if value is not None and value not in TRAILING_TIMEFRAMES:
            raise ValueError(f"must be one of {', '.join(TRAILING_TIMEFRAMES)} (the market view's windows)")
        return value


def _strategy(strategy: Strategy) -> StrategyNumbers:
    return StrategyNumbers.model_validate(_STRATEGY_DEFAULTS[strategy])


class StrategiesConfig(_Strict):
    """The strategy trailing manager's numbers; a trade's are resolved once, at its registration."""

    min_improvement_r: float = Field(0.1, ge=0, description="the least stop improvement sent, × R")
    session_factors: dict[Session, PositiveFloat] = Field(default_factory=lambda: dict(_SESSION_FACTORS))
    atr_multipliers: dict[str, PositiveFloat] = Field(
        default_factory=dict, description="per symbol; 1 if absent"
    )
    breakout_ib_volatility_trap: StrategyNumbers = Field(
        default_factory=lambda: _strategy(Strategy.BREAKOUT_IB_VOLATILITY_TRAP)
    )
    trend_continuation_pullback: StrategyNumbers = Field(
        default_factory=lambda: _strategy(Strategy.TREND_CONTINUATION_PULLBACK)
    )
    liquidity_sweep_reversal: StrategyNumbers = Field(
        default_factory=lambda: _strategy(Strategy.LIQUIDITY_SWEEP_REVERSAL)
    )
    order_block_rejection: StrategyNumbers = Field(
        default_factory=lambda: _strategy(Strategy.ORDER_BLOCK_REJECTION)
    )
    mean_reversion_range_scalp: StrategyNumbers = Field(
        default_factory=lambda: _strategy(Strategy.MEAN_REVERSION_RANGE_SCALP)
    )
    default_standard: StrategyNumbers = Field(default_factory=lambda: _strategy(Strategy.DEFAULT_STANDARD))

    @model_validator(mode="before")
    @classmethod
    def _merge(cls, data: Any) -> Any:
        """A strategy given in part keeps the defaults of the keys it leaves out."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for strategy in Strategy:
            given = merged.get(strategy.value)
            if isinstance(given, dict):
                merged[strategy.value] = {**_STRATEGY_DEFAULTS[strategy], **given}
        return merged

    @field_validator("session_factors")
    @classmethod
    def _all_sessions(cls, value: dict[Session, float]) -> dict[Session, float]:
        return {**_SESSION_FACTORS, **value}

    @field_validator("atr_multipliers")
    @classmethod
    def _symbols(cls, value: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, multiplier in value.items():
            key = normalise_symbol(name)
            if key not in KNOWN_SYMBOLS:
                raise ValueError(f"unknown symbol {name!r}; known: {', '.join(KNOWN_SYMBOLS)}")
            if key in out:
                raise ValueError(f"{name!r} names {key} a second time")
            out[key] = multiplier
        return out

    @model_validator(mode="after")
    def _methods(self) -> StrategiesConfig:
        for strategy in Strategy:
            numbers, method = self.numbers(strategy), METHODS[strategy]
            trails = method is not TrailMethod.NONE
            if trails and (numbers.timeframe is None or numbers.trail_atr is None):
                raise ValueError(f"{strategy.value}: trails ({method.value}), needs timeframe and trail_atr")
            if not trails and (numbers.timeframe is not None or numbers.trail_atr is not None):
                raise ValueError(f"{strategy.value}: does not trail, timeframe and trail_atr must be null")
            if (method is TrailMethod.DISPLACEMENT) != (numbers.displacement_atr is not None):
                raise ValueError(
                    f"{strategy.value}: displacement_atr is for {Strategy.ORDER_BLOCK_REJECTION.value} only, "
                    "and required there"
                )
        return self

    def numbers(self, strategy: Strategy) -> StrategyNumbers:
        numbers: StrategyNumbers = getattr(self, strategy.value)
        return numbers

    def atr_multiplier(self, symbol: str) -> float:
        return self.atr_multipliers.get(normalise_symbol(symbol), 1.0)

    def rules(self, strategy: Strategy, symbol: str, default_risk_pct: float) -> StrategyRules:
        """The manager's form of a strategy's numbers for one symbol (stored with the trade)."""
        n = self.numbers(strategy)
        return StrategyRules(
            strategy=strategy,
            method=METHODS[strategy],
            timeframe=n.timeframe,
            breakeven_r=n.breakeven_r,
            breakeven_r_asia=n.breakeven_r if n.breakeven_r_asia is None else n.breakeven_r_asia,
            trail_atr=n.trail_atr,
            displacement_atr=n.displacement_atr,
            partial_at_r=n.partial_at_r,
            partial_pct=n.partial_pct,
            cooldown_s=n.cooldown_s,
            min_improvement_r=self.min_improvement_r,
            atr_multiplier=self.atr_multiplier(symbol),
            session_factors=tuple((s, self.session_factors[s]) for s in Session),
            default_risk_pct=default_risk_pct,
        )


class EngineConfig(_Strict):
    """The validated content of config/dtms_config.json (besides the 'service' section)."""

    intelligent_exits: dict[TradeType, ExitRules] = Field(default_factory=_default_exits)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    adoption: AdoptionConfig = Field(default_factory=AdoptionConfig)
    symbols: dict[str, SymbolOverride] = Field(default_factory=dict)
    paper: PaperConfig = Field(default_factory=PaperConfig)
    signal_score: dict[str, Any] = Field(default_factory=dict)
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig())
    rails: RailsConfig = Field(default_factory=lambda: RailsConfig())
    strategies: StrategiesConfig = Field(default_factory=lambda: StrategiesConfig())

    @field_validator("signal_score")
    @classmethod
    def _score(cls, value: dict[str, Any]) -> dict[str, Any]:
        from dtms.market.config import ScoreConfig, ScoreConfigError

        try:
            ScoreConfig.from_dict(value)
        except ScoreConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("symbols")
    @classmethod
    def _known_symbols(cls, value: dict[str, SymbolOverride]) -> dict[str, SymbolOverride]:
        for name in value:
            if normalise_symbol(name) not in KNOWN_SYMBOLS:
                raise ValueError(f"unknown symbol {name!r}; known: {', '.join(KNOWN_SYMBOLS)}")
        return value

    @field_validator("intelligent_exits")
    @classmethod
    def _all_trade_types(cls, value: dict[TradeType, ExitRules]) -> dict[TradeType, ExitRules]:
        merged = _default_exits()
        merged.update(value)
        return merged

    def exit_rules(self, trade_type: TradeType) -> ExitRules:
        return self.intelligent_exits[trade_type]

    def strategy_rules(self, strategy: Strategy, symbol: str) -> StrategyRules:
        """A strategy's rules for a symbol (dtms.managers.trailing.resolve_rules reads them here)."""
        return self.strategies.rules(strategy, symbol, self.risk.default_risk_pct)

    def exit_rules_by_type(self) -> dict[TradeType, ExitRule]:
        """The intelligent exits' rules per trade type, as dtms.managers.exits.propose takes them."""
        return {t: r.rule(self.risk.default_risk_pct) for t, r in self.intelligent_exits.items()}


_SUFFIX = re.compile(r"(\.[A-Za-z]+|[cm])$")


def normalise_symbol(name: str) -> str:
    """Config-lookup form of a broker symbol: upper case, broker suffix (c, m, .pro) removed."""
    base = name.strip()
    stripped = _SUFFIX.sub("", base)
    return (stripped if stripped else base).upper()


class AppConfig(BaseModel):
    """Everything a running service reads at start."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    settings: Settings
    engine: EngineConfig
    config_path: Path
    news: tuple[NewsEvent, ...] | None = None  # None: no calendar file (news blackout off)


def _describe(exc: ValidationError, prefix: str, env_style: bool) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        if not loc:
            parts.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        key = f"DTMS_{loc.upper()}" if env_style else f"{prefix}{loc}"
        parts.append(f"{key}: {error['msg']}")
    return "; ".join(parts)


def load_config() -> AppConfig:
    """Read the JSON file named by DTMS_CONFIG, then the environment; raise ConfigError naming the key."""
    env = os.environ
    path = Path(env.get("DTMS_CONFIG", "config/dtms_config.json"))
    data: dict[str, Any] = {}
    if path.exists():
        data = _read_json(path)
    elif "DTMS_CONFIG" in env:
        raise ConfigError(f"DTMS_CONFIG: file {path} does not exist")
    settings = _settings(_service_section(data, path))
    engine = _engine_section(data, path)
    return AppConfig(settings=settings, engine=engine, config_path=path, news=_news(engine.rails, path))


class ConfigFile(BaseModel):
    """The config file as a running service re-reads it (dtms.guardian.reload): its 'service' section as
    written (settings apply at the next start), the validated engine config and the news calendar."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    service: dict[str, Any]
    engine: EngineConfig
    news: tuple[NewsEvent, ...] | None


def read_config_file(path: Path) -> ConfigFile:
    """Read and validate the config file (its 'service' section too: a bad one would fail the next start);
    raise ConfigError naming the key and the reason."""
    data = _read_json(path)
    service = _service_section(data, path)
    _settings(service)
    engine = _engine_section(data, path)
    return ConfigFile(service=service, engine=engine, news=_news(engine.rails, path))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object")
    return data


def _service_section(data: dict[str, Any], path: Path) -> dict[str, Any]:
    service = data.pop("service", {})
    if not isinstance(service, dict):
        raise ConfigError(f"{path}: 'service' must be an object")
    return service


def _settings(service: dict[str, Any]) -> Settings:
    """The settings: the file's 'service' section under the DTMS_* environment."""
    from_file = {k: v for k, v in service.items() if f"DTMS_{k.upper()}" not in os.environ}
    try:
        return Settings(**from_file)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, "", env_style=True)) from exc


def _engine_section(data: dict[str, Any], path: Path) -> EngineConfig:
    data.pop("$schema", None)
    try:
        return EngineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc, '', env_style=False)}") from exc


def _news(rails: RailsConfig, config_path: Path) -> tuple[NewsEvent, ...] | None:
    """The news calendar, validated at start; a missing file is an error only when the config names it."""
    if rails.news_calendar is None:
        return None
    path = (
        rails.news_calendar if rails.news_calendar.is_absolute() else config_path.parent / rails.news_calendar
    )
    if not path.is_file():
        if "news_calendar" in rails.model_fields_set:
            raise ConfigError(f"rails.news_calendar: file {path} does not exist")
        return None
    try:
        return tuple(parse_news_calendar(path.read_text(encoding="utf-8"), str(path)))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"rails.news_calendar: {path} cannot be read: {exc}") from exc
    except CalendarError as exc:
        raise ConfigError(f"rails.news_calendar: {exc}") from exc
