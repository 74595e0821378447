"""A peer for Baton's workflow benchmark: the same fan-out in DBOS, each agent a durable
workflow whose one step is a streamed call to the same scripted model server over HTTP
(the OpenAI client), run from a queue of 16 (as many in flight as Baton's), its system
database on SQLite or Postgres.

Usage: dbos_http.py N BASE_URL SYSTEM_DATABASE_URL
Prints "<agents per second> <peak RSS MiB>".
"""
import logging
import sys
import time

from dbos import DBOS, DBOSConfig
from openai import OpenAI

N = int(sys.argv[1])
BASE_URL = sys.argv[2]
DB_URL = sys.argv[3]
IN_FLIGHT = 16

logging.disable(logging.WARNING)
config: DBOSConfig = {"name": "baton-bench", "system_database_url": DB_URL, "log_level": "ERROR"}
DBOS(config=config)
client = OpenAI(base_url=BASE_URL, api_key="bench", max_retries=0)


@DBOS.step()
def ask(prompt: str) -> str:
    text = ""
    for chunk in client.chat.completions.create(
        model="mock-1", messages=[{"role": "user", "content": prompt}], stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    return text


@DBOS.workflow()
def agent(prompt: str) -> str:
    return ask(prompt)


@DBOS.workflow()
def fan_out(n: int) -> list:
    handles = [queue.enqueue(agent, f"item {i}") for i in range(n)]
    return [h.get_result() for h in handles]


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM: ru_maxrss would carry the parent's over exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    DBOS.launch()
    # Polled every 10 ms (the default is every second, which alone would cap it at 16/s).
    global queue
    queue = DBOS.register_queue("agents", concurrency=IN_FLIGHT, polling_interval_sec=0.01)
    started = time.perf_counter()
    results = fan_out(N)
    secs = time.perf_counter() - started
    assert len(results) == N and all(results), results[:3]
    peak = peak_rss_mib()
    print(f"{N / secs:.1f} {peak:.1f}")
    DBOS.destroy()


main()
