"""Contract specs of the fake trade server's symbols: the same numbers as the paper broker's defaults
(copied, not imported), plus EURUSD.frz (a EURUSD with a freeze level of 5 points) and EURUSD.min
(a EURUSD with volume_min 0.10), which the broker contract suite needs."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tests.fakes import mt5_types as t


@dataclass(frozen=True)
class Spec:
    """What the server knows of a symbol; spread_points is the configured spread."""

    name: str
    point: float
    digits: int
    contract_size: float
    stops_level: int
    spread_points: int
    volume_min: float = 0.01
    volume_step: float = 0.01
    volume_max: float = 100.0
    freeze_level: int = 0
    tick_size: float = 0.0  # 0: the point
    filling_mode: int = t.SYMBOL_FILLING_FOK | t.SYMBOL_FILLING_IOC
    trade_mode: int = t.SYMBOL_TRADE_MODE_FULL

    @property
    def tick(self) -> float:
        return self.tick_size or self.point

    def info(self, bid: float, ask: float, time_s: int, selected: bool) -> object:
        """The symbol_info() named tuple of this spec at the given quote."""
        return t.SymbolInfo(
            select=selected,
            visible=selected,
            time=time_s,
            digits=self.digits,
            spread=self.spread_points,
            trade_mode=self.trade_mode,
            trade_stops_level=self.stops_level,
            trade_freeze_level=self.freeze_level,
            filling_mode=self.filling_mode,
            bid=bid,
            ask=ask,
            point=self.point,
            trade_tick_value=self.tick * self.contract_size,
            trade_tick_size=self.tick,
            trade_contract_size=self.contract_size,
            volume_min=self.volume_min,
            volume_max=self.volume_max,
            volume_step=self.volume_step,
            currency_base=self.name[:3],
            currency_profit=self.name[3:6] if len(self.name) >= 6 else "USD",
            currency_margin=self.name[:3],
            description=self.name,
            name=self.name,
            path=f"Fake\\{self.name}",
        )


_EURUSD = Spec("EURUSD", point=0.00001, digits=5, contract_size=100_000, stops_level=10, spread_points=10)

DEFAULT_SPECS: dict[str, Spec] = {
    s.name: s
    for s in (
        _EURUSD,
        Spec("GBPUSD", point=0.00001, digits=5, contract_size=100_000, stops_level=10, spread_points=14),
        Spec("USDJPY", point=0.001, digits=3, contract_size=100_000, stops_level=10, spread_points=12),
        Spec(
            "XAUUSD",
            point=0.01,
            digits=2,
            contract_size=100,
            stops_level=20,
            spread_points=25,
            volume_max=50.0,
        ),
        Spec(
            "BTCUSD",
            point=0.01,
            digits=2,
            contract_size=1,
            stops_level=500,
            spread_points=1500,
            volume_max=10.0,
        ),
        Spec(
            "US30",
            point=0.01,
            digits=2,
            contract_size=1,
            stops_level=100,
            spread_points=200,
            volume_min=0.1,
            volume_step=0.1,
            volume_max=50.0,
        ),
        replace(_EURUSD, name="EURUSD.frz", freeze_level=5),
        replace(_EURUSD, name="EURUSD.min", volume_min=0.1),
    )
}
