"""Run one peer library on one workload against a Messages API at a base URL (the harness's
capturing proxy in front of `cachewise emulate`). Runs in the peers' own environment, not
cachewise's: it imports the peer libraries and nothing of cachewise.

    python drive.py SCENARIO WORKLOAD --base-url URL --api-key KEY

The workloads are the same for every peer: an agent (six turns on a ~6k-token system prompt and
two tools; turns 2 and 4 carry a tool round, scripted since the emulator answers in text) and a
batch (eight independent questions on the same system prompt and tools, four at a time). Each
call's answer goes into the next turn's history, as a real client's would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MODEL = "claude-sonnet-4-6"
MAX_TOKENS = 256
TURNS = 6
TOOL_TURNS = {1, 3}  # 0-based: these turns answer after a tool round
BATCH = 8
CONCURRENCY = 4
WORDS = (
    "order invoice carrier parcel refund warehouse customer policy return label tracking "
    "address delivery window exception damaged replacement credit approval escalation "
    "region holiday schedule weight dimension tariff customs broker signature locker pickup"
).split()


def system_prompt() -> str:
    """About 6,000 tokens of instructions, the same bytes on every run."""
    rng = random.Random(2026)
    paragraphs = []
    for i in range(60):
        words = " ".join(rng.choice(WORDS) for _ in range(70))
        paragraphs.append(f"Rule {i + 1}. When the {words}.")
    return "You are the support agent of a parcel company.\n\n" + "\n\n".join(paragraphs)


def question(i: int) -> str:
    return f"Question {i}: what happens to order A-{100 + i} if the parcel is late?"


TOOLS = [
    {
        "name": "lookup_order",
        "description": "Look up an order's status by its id.",
        "input_schema": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order id."}},
            "required": ["order_id"],
        },
    },
    {
        "name": "get_weather",
        "description": "Today's weather in a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city."}},
            "required": ["city"],
        },
    },
]


def tool_call(turn: int) -> tuple[str, str, dict[str, Any], str]:
    """The scripted tool round of a turn: id, tool, input, result."""
    order = f"A-{100 + turn}"
    return f"toolu_{turn:02d}", "lookup_order", {"order_id": order}, f"{order}: shipped, in transit"


# -- one function per peer: (base_url, api_key, workload) -> calls made ----------------------


def run_sdk(base_url: str, api_key: str, workload: str) -> int:
    """The anthropic SDK with automatic caching: a top-level `cache_control`."""
    import anthropic

    client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)

    def call(messages: list[dict[str, Any]]) -> str:
        reply = client.messages.create(
            model=MODEL,
            max_tokens=MAX_TOKENS,
            system=system_prompt(),
            tools=TOOLS,  # type: ignore[arg-type]
            messages=messages,  # type: ignore[arg-type]
            cache_control={"type": "ephemeral"},
        )
        return "".join(b.text for b in reply.content if b.type == "text")

    if workload == "batch":
        return _batch(lambda i: call([{"role": "user", "content": question(i)}]))
    messages: list[dict[str, Any]] = []
    for turn in range(TURNS):
        messages.append({"role": "user", "content": question(turn)})
        if turn in TOOL_TURNS:
            tid, name, args, result = tool_call(turn)
            messages.append(
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": tid, "name": name, "input": args}],
                }
            )
            messages.append(
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": tid, "content": result}],
                }
            )
        messages.append({"role": "assistant", "content": call(messages)})
    return TURNS


def run_litellm(base_url: str, api_key: str, workload: str) -> int:
    """LiteLLM's SDK with its default Anthropic caching (`enable_anthropic_prompt_caching`)."""
    import litellm

    litellm.enable_anthropic_prompt_caching = True
    tools = [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t["description"],
                "parameters": t["input_schema"],
            },
        }
        for t in TOOLS
    ]

    def call(messages: list[dict[str, Any]]) -> str:
        reply = litellm.completion(
            model=f"anthropic/{MODEL}",
            messages=[{"role": "system", "content": system_prompt()}, *messages],
            tools=tools,
            max_tokens=MAX_TOKENS,
            api_base=base_url,
            api_key=api_key,
            num_retries=0,
        )
        return str(reply.choices[0].message.content or "")

    if workload == "batch":
        return _batch(lambda i: call([{"role": "user", "content": question(i)}]))
    messages: list[dict[str, Any]] = []
    for turn in range(TURNS):
        messages.append({"role": "user", "content": question(turn)})
        if turn in TOOL_TURNS:
            tid, name, args, result = tool_call(turn)
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": tid,
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(args)},
                        }
                    ],
                }
            )
            messages.append({"role": "tool", "tool_call_id": tid, "content": result})
        messages.append({"role": "assistant", "content": call(messages)})
    return TURNS


def run_langchain(base_url: str, api_key: str, workload: str) -> int:
    """A LangChain v1 agent on ChatAnthropic with AnthropicPromptCachingMiddleware (defaults)."""
    from langchain.agents import create_agent
    from langchain_anthropic import ChatAnthropic
    from langchain_anthropic.middleware import AnthropicPromptCachingMiddleware
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def lookup_order(order_id: str) -> str:
        """Look up an order's status by its id."""
        return f"{order_id}: shipped"

    @tool
    def get_weather(city: str) -> str:
        """Today's weather in a city."""
        return f"{city}: sunny"

    model = ChatAnthropic(  # type: ignore[call-arg]
        model=MODEL, base_url=base_url, api_key=api_key, max_tokens=MAX_TOKENS, max_retries=0
    )
    agent = create_agent(
        model,
        tools=[lookup_order, get_weather],
        system_prompt=system_prompt(),
        middleware=[AnthropicPromptCachingMiddleware()],
    )
    if workload == "batch":
        return _batch(lambda i: agent.invoke({"messages": [HumanMessage(question(i))]}))
    history: list[Any] = []
    for turn in range(TURNS):
        history.append(HumanMessage(question(turn)))
        if turn in TOOL_TURNS:
            tid, name, args, result = tool_call(turn)
            history.append(AIMessage("", tool_calls=[{"name": name, "args": args, "id": tid}]))
            history.append(ToolMessage(result, tool_call_id=tid))
        history = list(agent.invoke({"messages": history})["messages"])
    return TURNS


def run_pydantic_ai(base_url: str, api_key: str, workload: str, setting: str) -> int:
    """pydantic-ai's AnthropicModel (the `direct` API: the model's own mapping and caching,
    without an agent's run loop, so tool rounds can be scripted). `setting`: `cache` (automatic
    caching, instructions and tool definitions), `cachepoint` (the same, and a 1h CachePoint
    ending every user prompt), `messages` (`anthropic_cache_messages` instead of automatic)."""
    from pydantic_ai import CachePoint
    from pydantic_ai.direct import model_request
    from pydantic_ai.messages import (
        ModelRequest,
        ModelResponse,
        SystemPromptPart,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )
    from pydantic_ai.models import ModelRequestParameters
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider
    from pydantic_ai.tools import ToolDefinition

    model = AnthropicModel(MODEL, provider=AnthropicProvider(base_url=base_url, api_key=api_key))
    conversation = "anthropic_cache_messages" if setting == "messages" else "anthropic_cache"
    settings: dict[str, Any] = {
        "max_tokens": MAX_TOKENS,
        "anthropic_cache_instructions": True,
        "anthropic_cache_tool_definitions": True,
        conversation: True,
    }
    params = ModelRequestParameters(
        function_tools=[
            ToolDefinition(
                name=t["name"],
                description=t["description"],
                parameters_json_schema=t["input_schema"],
            )
            for t in TOOLS
        ]
    )

    def prompt(i: int) -> UserPromptPart:
        content: list[Any] = [question(i)]
        if setting == "cachepoint":
            content.append(CachePoint(ttl="1h"))
        return UserPromptPart(content)

    async def call(messages: list[Any]) -> str:
        reply = await model_request(
            model, messages, model_settings=settings, model_request_parameters=params
        )  # type: ignore[arg-type]
        return "".join(p.content for p in reply.parts if isinstance(p, TextPart))

    system = SystemPromptPart(system_prompt())

    async def batch() -> int:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> str:
            async with gate:
                return await call([ModelRequest(parts=[system, prompt(i)])])

        await asyncio.gather(*(one(i) for i in range(BATCH)))
        return BATCH

    async def agent() -> int:
        history: list[Any] = []
        for turn in range(TURNS):
            parts: list[Any] = [system, prompt(turn)] if turn == 0 else [prompt(turn)]
            history.append(ModelRequest(parts=parts))
            if turn in TOOL_TURNS:
                tid, name, args, result = tool_call(turn)
                history.append(ModelResponse(parts=[ToolCallPart(name, args, tid)]))
                history.append(ModelRequest(parts=[ToolReturnPart(name, result, tid)]))
            history.append(ModelResponse(parts=[TextPart(await call(history))]))
        return TURNS

    return asyncio.run(batch() if workload == "batch" else agent())


def _batch(one: Callable[[int], Any]) -> int:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(BATCH)))
    return BATCH


SCENARIOS: dict[str, Callable[[str, str, str], int]] = {
    "sdk-auto": run_sdk,
    "litellm": run_litellm,
    "langchain": run_langchain,
    "pydantic-ai": lambda u, k, w: run_pydantic_ai(u, k, w, "cache"),
    "pydantic-ai-cachepoint-1h": lambda u, k, w: run_pydantic_ai(u, k, w, "cachepoint"),
    "pydantic-ai-messages": lambda u, k, w: run_pydantic_ai(u, k, w, "messages"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("workload", choices=["agent", "batch"])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    # Nothing leaves the machine: the peers' price maps and telemetry stay local.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    calls = SCENARIOS[args.scenario](args.base_url, args.api_key, args.workload)
    print(json.dumps({"scenario": args.scenario, "workload": args.workload, "calls": calls}))


if __name__ == "__main__":
    main()
