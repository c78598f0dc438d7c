"""Old import path of the landing-zone trigger, kept because Airflow's database stores each
trigger's class path: triggers registered before the package layout moved still load.
New code imports `medgov.orchestration.trigger`."""

from medgov.orchestration.trigger import LandingZoneTrigger, pending_flags

__all__ = ["LandingZoneTrigger", "pending_flags"]
