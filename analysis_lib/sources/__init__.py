"""Where particle galaxies come from: the mock universe (default) or IllustrisTNG."""

from __future__ import annotations


def make_source(cfg: dict):
    """The source named by cfg['data']['source'] ('mock' here; 'tng' lives in sources.tng)."""
    name = cfg["data"]["source"]
    if name == "mock":
        from analysis_lib.sources.mock import MockSource

        return MockSource(cfg)
    if name == "tng":
        from analysis_lib.sources import tng

        factory = getattr(tng, "TNGSource", None)
        if factory is None:
            raise NotImplementedError("analysis_lib.sources.tng provides no TNGSource")
        return factory(cfg)
    raise ValueError(f"data.source '{name}' unknown (mock | tng)")
