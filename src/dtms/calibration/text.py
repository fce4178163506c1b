"""The calibration report as text for people (the numbers docs/calibration.md keeps)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from dtms.calibration.report import HEALTHY_MIN, HEDGED_MAX, LIVE_STATES, Outcome, Report
from dtms.calibration.run import Plan
from dtms.calibration.setup import Settings
from dtms.domain.enums import TradeState


def _show(path: Path) -> str:
    """A path relative to the working directory when it is under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _mark(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _money_rows(a: Outcome, b: Outcome) -> list[str]:
    rows = [
        ("P/L", a.pnl, b.pnl),
        ("mean per trade", a.mean_trade, b.mean_trade),
        ("worst trade", a.worst_trade, b.worst_trade),
        ("best trade", a.best_trade, b.best_trade),
    ]
    out = [f"  {'':<30}{'with DTMS':>20}{'without DTMS':>20}"]
    out += [f"  {name:<30}{x:>20,.2f}{y:>20,.2f}" for name, x, y in rows]
    out.append(f"  {'winning trades':<30}{a.winners:>20,}{b.winners:>20,}")
    dd_a, dd_b = (
        f"{a.max_drawdown:,.2f} ({a.max_drawdown_pct} %)",
        f"{b.max_drawdown:,.2f} ({b.max_drawdown_pct} %)",
    )
    out.append(f"  {'max drawdown (hourly equity)':<30}{dd_a:>20}{dd_b:>20}")
    return out


def _exit_frames(settings: Settings, key: str) -> str:
    """The intelligent exits' timeframe `key` (trailing_timeframe, widening_timeframe): one, or per type."""
    by_type = {t.value: str(getattr(r, key)) for t, r in settings.engine.intelligent_exits.items()}
    if len(set(by_type.values())) == 1:
        return next(iter(by_type.values()))
    return "(" + ", ".join(f"{t} {tf}" for t, tf in by_type.items()) + ")"


def render(report: Report, plan: Plan, settings: Settings) -> str:
    """The whole report; every line is a fact about this run."""
    c, r, f, score = settings.cadence, report, settings.frames, settings.score
    tf = settings.timeframe
    signals = "/".join(sorted({str(t) for t in score.timeframes.values()}))
    lines = [
        f"DTMS calibration: {plan.symbol} {settings.timeframe}, {_show(plan.csv)}",
        f"Config: {_show(settings.base)}{'' if settings.base.exists() else ' (absent: defaults)'} under "
        f"{_show(settings.overlay)}",
        f"Replay of {settings.timeframe} data: signals on {signals}, regime on {score.regime_timeframe}, "
        f"ATR for R and hedge stops {f.risk_atr}, for stop distances {f.stop_atr}, recovery structure "
        f"{f.recovery_structure}, intelligent exits' trailing {_exit_frames(settings, 'trailing_timeframe')} "
        f"and widening {_exit_frames(settings, 'widening_timeframe')}; deep check every "
        f"{c.deep_interval_s:g} s, cool-down {c.cool_down_s:g} s, "
        f"flat timer {c.flat_timer_s:g} s, recovery timer {c.recovery_timer_s:g} s",
        f"Data replayed: {_day(r.first_ms)} to {_day(r.last_ms)} UTC",
        f"Trades: {r.trades:,}: a BUY and a SELL at the open of every {plan.every_bars}th bar once the score "
        f"is warm (from {_day(r.first_open_ms)}), {plan.lot} lot, stop {plan.stop_atr:g} x ATR({tf}), "
        f"TP {plan.target_atr:g} x ATR({tf}); {r.closed_at_end} still open at the end "
        f"were closed at the last price" + (f"; {r.refused} opens refused" if r.refused else ""),
        "",
        f"  {'share of trade-time':<20}{'all trade-time':>16}{'mean per trade':>16}{'trades in it':>14}",
    ]
    for state in LIVE_STATES:
        s = state.value
        lines.append(f"  {s:<20}{r.time_share[s]:>14.2f} %{r.mean_share[s]:>14.2f} %{r.reached[s]:>14,}")
    lines += [
        "",
        f"Actions done: {r.actions_per_trade:.2f} per trade, of which defensive {r.defensive_per_trade:.2f} "
        f"(the rest: the intelligent exits); {r.failed} failed",
        "  " + ", ".join(f"{k} {v:,}" for k, v in r.actions.items()) if r.actions else "  none",
    ]
    if r.skipped:
        lines.append(
            "  skipped (journaled with a reason): " + ", ".join(f"{k} {v:,}" for k, v in r.skipped.items())
        )
    lines += [
        "Trades closed by: " + ", ".join(f"{k} {v:,}" for k, v in r.closed_by.items()),
        "",
        *_money_rows(r.with_dtms, r.without_dtms),
        "",
        f"Accounting: P/L = sum of the deals = balance change: with DTMS {r.with_dtms.pnl:,.2f} = "
        f"{r.with_dtms.deals_sum:,.2f} = {r.with_dtms.balance_change:,.2f}; without "
        f"{r.without_dtms.pnl:,.2f} = {r.without_dtms.deals_sum:,.2f} = {r.without_dtms.balance_change:,.2f}",
        "",
        "Targets:",
        f"  HEALTHY >= {HEALTHY_MIN:g} % of trade-time: {_mark(r.targets['healthy_share_ge_60'])} "
        f"({r.time_share[TradeState.HEALTHY.value]:.2f} % of all, "
        f"{r.mean_share[TradeState.HEALTHY.value]:.2f} % mean per trade)",
        f"  HEDGED <= {HEDGED_MAX:g} % of trade-time: {_mark(r.targets['hedged_share_le_5'])} "
        f"({r.time_share[TradeState.HEDGED.value]:.2f} % of all, "
        f"{r.mean_share[TradeState.HEDGED.value]:.2f} % mean per trade)",
        f"  worst trade not made worse by DTMS: {_mark(r.targets['worst_trade_not_worse'])} "
        f"({r.with_dtms.worst_trade:,.2f} with, {r.without_dtms.worst_trade:,.2f} without)",
    ]
    return "\n".join(lines)
