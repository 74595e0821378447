"""The comparison for Baton's workflow benchmark: the same fan-out in LangGraph.

N agents (default 1,000) through a Send fan-out, 16 in flight (max_concurrency), each
a call to a fake chat model, durable with LangGraph's SQLite checkpointer.
Prints "<agents per second> <peak RSS MiB>".
Needs: pip install langgraph langgraph-checkpoint-sqlite aiosqlite
"""
import asyncio
import operator
import os
import resource
import sys
import tempfile
import time
from typing import Annotated, TypedDict

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
IN_FLIGHT = 16


class State(TypedDict):
    items: list
    results: Annotated[list, operator.add]


class Item(TypedDict):
    item: str


model = FakeListChatModel(responses=["done"])


async def agent(state: Item):
    reply = await model.ainvoke(state["item"])
    return {"results": [reply.content]}


def fan_out(state: State):
    return [Send("agent", {"item": i}) for i in state["items"]]


graph = StateGraph(State)
graph.add_node("agent", agent)
graph.add_conditional_edges(START, fan_out, ["agent"])
graph.add_edge("agent", END)


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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{N / secs:.1f} {peak:.1f}")


asyncio.run(main())
