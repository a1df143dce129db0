"""What the vitals estimator reports for one node at one instant."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class VitalsEstimate:
    t: float  # receive-clock time of the estimate (unix seconds)
    #: None = unknown (not decided yet, or the node stopped sending): never a guessed False
    presence: bool | None
    #: None only when there is no data to decide on
    motion: bool | None
    breathing_bpm: float | None
    breathing_conf: float
    heart_bpm: float | None
    heart_conf: float
    #: why a rate is null: "no-data", "warming-up", "motion", "no-presence", "low-confidence"
    #: (both), "gaps", "subcarrier-count-changed", "bad-frames"; when only one rate is null,
    #: "breathing: low-confidence" or "heart: <why>" with <why> one of "low-confidence",
    #: "breathing-harmonic", "inconsistent" (window halves disagree), "unconfirmed" (not yet
    #: steady for ``heart_persist`` s), "unstable", "too-short"; "" when both rates are set
    reason: str = ""
    motion_score: float = 0.0  # recent change rate / quiet level
    presence_score: float = 0.0  # combined breathing-band SNR

    def to_json(self, t0: float = 0.0, node: str | None = None) -> dict:
        """The ``csi-edge vitals --json`` record (``t`` relative to ``t0``)."""
        d = {
            "t": round(self.t - t0, 3),
            "node": node,
            "presence": None if self.presence is None else bool(self.presence),
            "motion": None if self.motion is None else bool(self.motion),
            "breathing_bpm": None if self.breathing_bpm is None else round(self.breathing_bpm, 2),
            "breathing_conf": round(float(self.breathing_conf), 3),
            "heart_bpm": None if self.heart_bpm is None else round(self.heart_bpm, 2),
            "heart_conf": round(float(self.heart_conf), 3),
            "reason": self.reason,
        }
        if self.presence is None:
            d["presence_reason"] = presence_reason(self.reason)
        if node is None:
            del d["node"]
        return d


def presence_reason(reason: str) -> str:
    """Why presence is unknown, from the estimate's reason."""
    if reason in ("no-data", "bad-frames", "subcarrier-count-changed"):
        return reason
    return "deciding"


def yes_no(value: bool | None) -> str:
    """Text for a presence/motion flag: "unknown" for None (not decided yet), never "no"."""
    return "unknown" if value is None else "yes" if value else "no"
