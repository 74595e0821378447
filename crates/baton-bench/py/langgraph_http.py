"""A peer for Baton's workflow benchmark: the same fan-out in LangGraph, each agent one
streamed call to the same scripted model server over HTTP (ChatOpenAI), 16 in flight
(max_concurrency), durable with LangGraph's SQLite checkpointer.

Usage: langgraph_http.py N BASE_URL   (BASE_URL ends in /v1)
Prints "<agents per second> <peak RSS MiB>".
"""
import asyncio
import operator
import os
import sys
import tempfile
import time
from typing import Annotated, TypedDict

from langchain_openai import ChatOpenAI
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

N = int(sys.argv[1])
BASE_URL = sys.argv[2]
IN_FLIGHT = 16


class State(TypedDict):
    items: list
    results: Annotated[list, operator.add]


class Item(TypedDict):
    item: str


model = ChatOpenAI(model="mock-1", base_url=BASE_URL, api_key="bench", streaming=True, max_retries=0)


async def agent(state: Item):
    reply = await model.ainvoke(state["item"])
    return {"results": [reply.content]}


def fan_out(state: State):
    return [Send("agent", {"item": i}) for i in state["items"]]


graph = StateGraph(State)
graph.add_node("agent", agent)
graph.add_conditional_edges(START, fan_out, ["agent"])
graph.add_edge("agent", END)


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM: ru_maxrss would carry the parent's over exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def main():
    path = os.path.join(tempfile.mkdtemp(), "checkpoints.db")
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        app = graph.compile(checkpointer=saver)
        started = time.perf_counter()
        out = await app.ainvoke(
            {"items": [f"item {i}" for i in range(N)], "results": []},
            {"configurable": {"thread_id": "bench"}, "max_concurrency": IN_FLIGHT},
        )
        secs = time.perf_counter() - started
    assert len(out["results"]) == N, len(out["results"])
    assert all(out["results"]), "every agent answered"
    peak = peak_rss_mib()
    print(f"{N / secs:.1f} {peak:.1f}")


asyncio.run(main())
