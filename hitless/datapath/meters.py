"""Datapath meters: per-meter token buckets that decide, packet by packet, whether a
``Meter`` action lets the packet go on.

A meter has one or more bands, each a rate (kbit/s or packets/s, the meter's unit) and a
burst size (kbits or packets). Each band has a token bucket that holds at most the burst
size and fills at the band's rate; a bucket starts full. A packet costs one token of
every band (packets/s) or its length in bits (kbit/s): a band whose bucket holds enough
pays and conforms, a band whose bucket does not is exceeded. Of the exceeded bands the
one with the highest rate applies (OpenFlow 1.3.5 §5.7: "the meter band with the highest
configured rate that is lower than the current measured rate"); a drop band drops the
packet. Bands of other types (DSCP remark, experimenter) are counted but let the packet
pass unchanged. Each band counts the packets and bytes it applied to.

A band without a burst size gets one second's worth of its rate, as Open vSwitch's
userspace datapath does.

Pure: time comes in as ``now`` (monotonic seconds); the providers own the clock. Meter
configurations are pushed by the bridge (``Datapath.meter_set``).

Handoff: ``export_levels`` describes every meter's buckets (its configuration, each
band's token level and the CLOCK_MONOTONIC time of that level); a new process's table
takes them with ``adopt_levels`` after the bridge has pushed the same meters, so the
buckets carry on where they were (refilled for the time in between) instead of
starting full: an upgrade lets no extra burst through. The bands' counters are not
carried: the bridge folds them into the OpenFlow meters' band statistics, which the
handoff carries, and starts counting the new datapath's from zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hitless.state.handles import MeterLevelV1

__all__ = ["BAND_DROP", "BAND_DSCP_REMARK", "DpMeter", "DpMeterBand", "MeterTable"]

BAND_DROP = 1  # OFPMBT_DROP
BAND_DSCP_REMARK = 2  # OFPMBT_DSCP_REMARK


@dataclass(frozen=True, slots=True)
class DpMeterBand:
    rate: int  # kbit/s or packets/s (the meter's unit), > 0
    burst: int = 0  # kbits or packets; 0 = the rate (one second's worth)
    type: int = BAND_DROP


@dataclass(frozen=True, slots=True)
class DpMeter:
    """A meter's configuration as the datapath sees it."""

    kbps: bool  # False: packets/s
    bands: tuple[DpMeterBand, ...]


class _Meter:
    __slots__ = ("cfg", "kbps", "types", "rates", "caps", "tokens", "order", "last", "stats")

    def __init__(self, cfg: DpMeter, now: float) -> None:
        self.cfg = cfg
        self.kbps = cfg.kbps
        unit = 1000 if cfg.kbps else 1  # tokens are bits or packets
        self.types = [b.type for b in cfg.bands]
        self.rates = [float(b.rate * unit) for b in cfg.bands]  # tokens per second
        self.caps = [float((b.burst or b.rate) * unit) for b in cfg.bands]
        self.tokens = list(self.caps)  # start full
        # Band indexes by falling rate: the first exceeded one in this order applies.
        self.order = sorted(range(len(cfg.bands)), key=lambda i: -cfg.bands[i].rate)
        self.last = now
        self.stats = [[0, 0] for _ in cfg.bands]  # per band: packets, bytes


class MeterTable:
    """The meters of one datapath."""

    __slots__ = ("_meters",)

    def __init__(self) -> None:
        self._meters: dict[int, _Meter] = {}

    def __len__(self) -> int:
        return len(self._meters)

    def __contains__(self, meter_id: int) -> bool:
        return meter_id in self._meters

    def ids(self) -> list[int]:
        return sorted(self._meters)

    def set(self, meter_id: int, cfg: DpMeter, now: float) -> None:
        """Install or replace a meter: full buckets, band counters at zero."""
        for b in cfg.bands:
            if b.rate <= 0 or b.burst < 0:
                raise ValueError(f"meter {meter_id}: band rate {b.rate}, burst {b.burst}")
        self._meters[meter_id] = _Meter(cfg, now)

    def delete(self, meter_id: int) -> None:
        self._meters.pop(meter_id, None)

    def stats(self, meter_id: int) -> tuple[tuple[int, int], ...] | None:
        """Per band (packets, bytes) the band applied to since ``set``; None if absent."""
        m = self._meters.get(meter_id)
        if m is None:
            return None
        return tuple((p, b) for p, b in m.stats)

    def levels(self, meter_id: int, now: float) -> tuple[float, ...] | None:
        """Each band's tokens at ``now`` (bits or packets); None if the meter is absent."""
        m = self._meters.get(meter_id)
        if m is None:
            return None
        dt = max(0.0, now - m.last)
        return tuple(min(c, t + r * dt) for t, r, c in zip(m.tokens, m.rates, m.caps, strict=True))

    # Handoff ---------------------------------------------------------------------
    def export_levels(self) -> list[MeterLevelV1]:
        """Every meter's buckets: its configuration (so that levels are only ever given
        to the same meter), each band's tokens and when they were so."""
        return [
            MeterLevelV1(
                mid,
                m.cfg.kbps,
                [(b.rate, b.burst, b.type) for b in m.cfg.bands],
                list(m.tokens),
                m.last,
            )
            for mid, m in sorted(self._meters.items())
        ]

    def adopt_levels(self, records: Iterable[MeterLevelV1], now: float) -> int:
        """Give the meters of this table that ``export_levels`` (of another process)
        describes with the same configuration those bucket levels; the band counters stay
        as they are. A level is capped at its band's burst, and a time after ``now`` (a
        different clock) counts as ``now``. Returns how many meters took their levels."""
        n = 0
        for rec in records:
            cfg = DpMeter(rec.kbps, tuple(DpMeterBand(r, b, t) for r, b, t in rec.bands))
            m = self._meters.get(rec.meter_id)
            if m is None or m.cfg != cfg or len(rec.tokens) != len(m.tokens):
                continue  # not (or no longer) the meter these levels belong to
            m.tokens = [max(0.0, min(c, t)) for t, c in zip(rec.tokens, m.caps, strict=True)]
            m.last = min(rec.last, now)
            n += 1
        return n

    def admit(self, meter_id: int, nbytes: int, now: float) -> bool:
        """Run one packet of ``nbytes`` through the meter: False if a drop band applies.
        A meter that does not exist lets everything pass."""
        m = self._meters.get(meter_id)
        if m is None:
            return True
        dt = now - m.last
        tokens = m.tokens
        caps = m.caps
        if dt > 0:
            m.last = now
            rates = m.rates
            for i in range(len(tokens)):
                t = tokens[i] + rates[i] * dt
                tokens[i] = caps[i] if t > caps[i] else t
        cost = nbytes * 8 if m.kbps else 1
        applied = -1
        for i in m.order:
            if tokens[i] >= cost:
                tokens[i] -= cost
            elif applied < 0:
                applied = i  # the highest-rate band exceeded
        if applied < 0:
            return True
        s = m.stats[applied]
        s[0] += 1
        s[1] += nbytes
        return m.types[applied] != BAND_DROP
