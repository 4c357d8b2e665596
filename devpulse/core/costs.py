"""Dollars: what a request cost, what it would have cost in the cloud, and the mix simulator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devpulse.core.config import Config
from devpulse.core.errors import ConfigError
from devpulse.core.types import Side

DAYS_PER_MONTH = 30


def request_cost(
    config: Config,
    side: Side,
    model: str,
    tokens_in: int,
    tokens_out: int,
    *,
    cache_read: int = 0,
    cache_write: int = 0,
) -> float:
    """USD for one request: the model's price in the cloud, the configured local rate here.

    `tokens_in` excludes the prompt-cache tokens (as the Messages API counts them), which
    the cloud bills at their own prices; locally the rate is for the tokens in and out.
    """
    if side is Side.LOCAL:
        return (tokens_in + tokens_out) * config.ledger.local_usd_per_million_tokens / 1e6
    price = config.price(model)
    if price is None:
        return 0.0
    return (
        tokens_in * price.input
        + tokens_out * price.output
        + cache_read * price.cache_read_price
        + cache_write * price.cache_write_price
    ) / 1e6


def counterfactual_cost(
    config: Config, tokens_in: int, tokens_out: int, *, cache_read: int = 0, cache_write: int = 0
) -> float:
    """USD had the request gone to the configured cloud model."""
    return request_cost(
        config,
        Side.CLOUD,
        config.cloud.model,
        tokens_in,
        tokens_out,
        cache_read=cache_read,
        cache_write=cache_write,
    )


@dataclass(frozen=True, slots=True)
class Simulation:
    requests_per_day: int
    avg_in_tokens: int
    avg_out_tokens: int
    local_share: float
    cloud_model: str
    input_usd_per_m: float
    output_usd_per_m: float
    local_usd_per_m: float

    def as_dict(self) -> dict[str, Any]:
        monthly = self.requests_per_day * DAYS_PER_MONTH
        per_cloud = (
            self.avg_in_tokens * self.input_usd_per_m + self.avg_out_tokens * self.output_usd_per_m
        ) / 1e6
        per_local = (self.avg_in_tokens + self.avg_out_tokens) * self.local_usd_per_m / 1e6
        cloud_requests = monthly * (1 - self.local_share)
        local_requests = monthly * self.local_share
        blended = cloud_requests * per_cloud + local_requests * per_local
        all_cloud = monthly * per_cloud
        return {
            "inputs": {
                "requests_per_day": self.requests_per_day,
                "avg_in_tokens": self.avg_in_tokens,
                "avg_out_tokens": self.avg_out_tokens,
                "local_share": self.local_share,
                "cloud_model": self.cloud_model,
                "days_per_month": DAYS_PER_MONTH,
                "price_usd_per_million": {
                    "input": self.input_usd_per_m,
                    "output": self.output_usd_per_m,
                    "local": self.local_usd_per_m,
                },
            },
            "requests_per_month": monthly,
            "cloud_requests_per_month": round(cloud_requests, 2),
            "local_requests_per_month": round(local_requests, 2),
            "cost_per_cloud_request_usd": round(per_cloud, 6),
            "blended_monthly_usd": round(blended, 2),
            "all_cloud_monthly_usd": round(all_cloud, 2),
            "savings_monthly_usd": round(all_cloud - blended, 2),
            "savings_pct": round(100 * (all_cloud - blended) / all_cloud, 2) if all_cloud else 0.0,
            "series": [
                {
                    "local_share": share / 10,
                    "monthly_usd": round(
                        monthly * ((1 - share / 10) * per_cloud + share / 10 * per_local), 2
                    ),
                }
                for share in range(11)
            ],
        }


def simulate(
    config: Config,
    *,
    requests_per_day: int,
    avg_in_tokens: int,
    avg_out_tokens: int,
    local_share: float,
    cloud_model: str | None = None,
) -> Simulation:
    model = cloud_model or config.cloud.model
    price = config.price(model)
    if price is None:
        raise ConfigError(f"no price for {model!r}: add it under [prices] in the config")
    return Simulation(
        requests_per_day,
        avg_in_tokens,
        avg_out_tokens,
        local_share,
        model,
        price.input,
        price.output,
        config.ledger.local_usd_per_million_tokens,
    )
