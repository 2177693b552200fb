"""The atomic changes of a job in Redis, as Lua scripts (run with EVAL by ``shared.job_store``).

Each script checks the state it expects and changes the record, the input, the result and the
set of running jobs together, so two processes never both act on one job:

- ``TRANSITION``: from listed states to another (the API cancels, the worker expires a job
  that waited past its deadline); into a final state it also ends the job (below).
- ``CLAIM``: the worker starts a *queued* job under a fresh run id; a message delivered twice
  finds the job running (or done) and is dropped.
- ``FINISH``: the run that claimed the job, and only it, ends the job: writes the record and
  the result, deletes the input, sets the finished record and the result to expire after the
  result TTL, and publishes the id on the events channel. A run whose job was requeued
  meanwhile (its worker looked dead) writes nothing: a job is reported at most once.
- ``REQUEUE``: a job running on a worker whose heartbeat key expired goes back to ``queued``
  (its run id cleared, so that worker, were it alive after all, cannot finish it).
- ``RESEND``: a job still queued since before a cutoff gets a fresh send time, once, for the
  one sweeper that wins it to send its message again (a message can be lost: a worker killed
  between popping it from the broker's list and recording it as unacked).

A queued job is in the queued set (scored by when its message was last sent) from its
creation or requeue until it is claimed or ends; a running job is in the running set.

Each returns 1 when applied; CLAIM and TRANSITION return the job's state otherwise (nil when
the job does not exist). CLAIM and FINISH answer 1 again to the same run id, so a command
retried after a lost reply does not lose the job.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.jobs import JobState

# KEYS: job, input, running set, queued set. ARGV: from-states (comma-separated), seconds to
# keep a job that ends here (0: not a final state), events channel, job id, then field, value pairs.
TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return nil end
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == state then
    redis.call('HSET', KEYS[1], unpack(ARGV, 5))
    local keep = tonumber(ARGV[2])
    if keep > 0 then
      redis.call('DEL', KEYS[2])
      redis.call('ZREM', KEYS[3], ARGV[4])
      redis.call('ZREM', KEYS[4], ARGV[4])
      redis.call('EXPIRE', KEYS[1], keep)
      redis.call('PUBLISH', ARGV[3], ARGV[4])
    end
    return 1
  end
end
return state
"""

# KEYS: job, running set, queued set. ARGV: worker id, run id, start time, running set TTL,
# job id.
CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return nil end
if state == 'running' and redis.call('HGET', KEYS[1], 'run_id') == ARGV[2] then return 1 end
if state ~= 'queued' then return state end
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'run_id', ARGV[2],
           'started_at', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[5])
return 1
"""

# KEYS: job, input, result, running set. ARGV: run id, seconds to keep the finished job,
# events channel, job id, result bytes ('' for none), then field, value pairs.
FINISH = """
if redis.call('HGET', KEYS[1], 'run_id') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if ARGV[5] ~= '' then redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[2]) end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[4], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

# KEYS: job, the heartbeat of the worker running it, running set, queued set. ARGV: worker
# id, job id, now, queued set TTL. A job no longer running (ended, expired) only leaves the
# running set.
REQUEUE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  redis.call('ZREM', KEYS[3], ARGV[2])
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'worker', '', 'run_id', '', 'started_at', '')
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('EXPIRE', KEYS[4], ARGV[4])
return 1
"""

# KEYS: job, queued set. ARGV: job id, cutoff, now, queued set TTL. A job no longer queued
# (claimed, ended, expired) only leaves the queued set.
RESEND = """
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
local sent = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not sent or tonumber(sent) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""


def field_args(fields: dict[str, object]) -> list[str]:
    """``{"a": 1, "b": None}`` as ``["a", "1", "b", ""]`` (None is stored as "")."""
    args: list[str] = []
    for key, value in fields.items():
        args += [key, "" if value is None else str(value)]
    return args


def transition_args(
    from_states: Iterable[JobState],
    to: JobState,
    keep_s: int,
    channel: str,
    job_id: str,
    fields: dict[str, object],
) -> list[str]:
    head = [",".join(s.value for s in from_states), str(keep_s if to.final else 0), channel]
    return [*head, job_id, *field_args({"state": to.value, **fields})]
