"""Per-caller rate limits on the requests that create jobs (translate, generate).

A token bucket per caller in Redis, so every API replica shares it: the caller is its API key
(hashed; never stored in clear) or, on a server without keys, its client address. A bucket
holds ``S2I_RATE_LIMIT_BURST`` tokens and refills at ``S2I_RATE_LIMIT_PER_S`` a second (0: no
limit, the default for ``make run``); a request finding it empty gets 429 ``rate-limited``
with Retry-After. The script reads Redis's own clock, so replicas need not agree on time.
"""

from __future__ import annotations

import hashlib
import math

from fastapi import Depends, Request

from services.api import problem_kinds as kinds
from services.api.deps import StateDep
from services.api.problems import Problem

RATE_KEY_PREFIX = "s2i:rate:"

# KEYS[1] the bucket; ARGV: rate (tokens/s), burst. Returns {allowed, seconds to wait}.
BUCKET_SCRIPT = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed, wait = 0, (1 - tokens) / rate
if tokens >= 1 then
  tokens, allowed, wait = tokens - 1, 1, 0
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(wait)}
"""


def caller_key(request: Request) -> str:
    """The bucket of whoever sent ``request``: its API key, else its address (hashed)."""
    presented = getattr(request.state, "api_key", None)
    who = (
        f"key:{presented}" if presented else f"addr:{request.client.host if request.client else ''}"
    )
    return RATE_KEY_PREFIX + hashlib.sha256(who.encode("utf-8", "surrogateescape")).hexdigest()[:32]


async def enforce_rate_limit(request: Request, state: StateDep) -> None:
    rate, burst = state.settings.rate_limit_per_s, state.settings.rate_limit_burst
    if rate <= 0:
        return
    allowed, wait = await state.redis.eval(BUCKET_SCRIPT, 1, caller_key(request), rate, burst)
    if int(allowed) != 1:
        seconds = float(wait)
        raise Problem(
            kinds.RATE_LIMITED,
            f"more than {rate:g} requests a second (bursts of {burst}) from this caller; "
            f"retry in {seconds:.1f} s",
            headers={"Retry-After": str(max(1, math.ceil(seconds)))},
        )


RateLimitDep = Depends(enforce_rate_limit)
