"""Writes examples/n8n/: one Anthropic credential and four workflows over one big system prompt.

Run it from the repository root (`python scripts/n8n_examples.py`); the files it writes are checked
in, so n8n users import them without running anything. Each workflow starts at a Webhook (POST
/webhook/cachewise-KIND, body {"question": "..."}) and answers with its last node's output.

- http:   HTTP Request POSTs /v1/messages itself, its system block marked with cache_control
- chain:  Basic LLM Chain + Anthropic Chat Model, Prompt Caching "5 Minutes"
- agent:  AI Agent + Anthropic Chat Model ("5 Minutes") + the Calculator tool
- native: the Anthropic node's "Message a model", which has no caching setting at all

Every system prompt is the same handbook after a first line naming its workflow: the workflows do
not share cache entries (a cache prefix starts at the first token), and a recorded call says which
workflow sent it. The URL below is a placeholder: set it to your proxy (the end-to-end run rewrites
it).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

BASE_URL = "http://127.0.0.1:8080"
MODEL = "claude-sonnet-4-6"
MAX_TOKENS = 300
CREDENTIAL = {"id": "cwAnthropicProxy", "name": "Anthropic via cachewise"}
KINDS = ("http", "chain", "agent", "native")
OUT = Path(__file__).resolve().parent.parent / "examples" / "n8n"

POLICIES = """\
# Larkspur Freight & Fulfilment: support desk handbook (revision 14, effective 2026-02-01)

You answer customers and account managers of Larkspur Freight & Fulfilment (company no. 08841207,
VAT GB 412 7730 19), a third-party logistics firm with four warehouses and 1,860 active merchant
accounts. Answer from this handbook only; when it does not say, say so and offer a ticket.
Quote ids exactly as written (orders LFO-, tickets LST-, merchants LM-, warehouses LW-).

## 1. Service levels
- Standard parcels: dispatched within 1 working day of the order reaching us before 14:00 local
  time; 2 working days otherwise. Same-day cut-off for Express is 11:30.
- Pallets: booked 48 hours ahead; the carrier window is 08:00-17:00, Monday to Friday.
- Returns are graded within 5 working days of arrival (A: resell, B: refurbish, C: recycle).
- Stock counts: cycle counts weekly per aisle, a full count on 2026-06-28 and 2026-12-27 (the
  warehouses accept no inbound deliveries on those two Sundays).
- Uptime of the merchant portal: 99.5% per calendar month, measured every 60 seconds.

## 2. Fees (GBP, excluding VAT, tariff T-2026-A)
- Pick and pack: 0.85 per order plus 0.22 per extra line; gift wrap 1.40 per order.
- Storage: 0.41 per shelf bin per week, 4.90 per pallet per week, long-term storage (over 180
  days) 9.80 per pallet per week from day 181.
- Inbound: 6.50 per pallet, 0.95 per carton, 28.00 per hour for unlabelled stock.
- Returns processing: 1.75 per parcel; photos of grade-B items 0.30 each.
- Minimum monthly invoice: 250.00. Invoices are issued on the 3rd, payment terms 30 days; late
  payment interest 4% over the Bank of England base rate, after a reminder on day 37.

## 3. Credits for our mistakes
- Mis-pick (wrong item or quantity): we pay the return label, re-ship at no charge, and credit the
  pick fee. Reported within 30 days of delivery.
- Damage in the warehouse: credit at the merchant's declared cost price, up to 2,500.00 per
  incident, with photos within 72 hours of the merchant being told.
- Late dispatch against section 1: 10% of that day's pick-and-pack fees per missed order, capped
  at 15% of the monthly invoice. Not owed during declared peak weeks (2026-11-23 to 2026-12-14)
  or when the carrier failed to collect.
- Portal downtime below 99.5%: 5% of that month's storage fees for each full 0.5% below.
Credits over 500.00 need approval by a team lead (see section 7) and appear on the next invoice.

## 4. What we never do
- Never promise a delivery date: carriers own delivery; we own dispatch.
- Never share one merchant's stock, prices or volumes with another merchant.
- Never change an address on an order already in status PACKED or later; offer an intercept
  request to the carrier instead (fee 7.50, success not guaranteed).
- Never accept lithium batteries shipped loose (UN3090); packed with equipment (UN3481) is fine
  up to 100 Wh per cell, with the label on the outer carton.

## 5. Escalations
- Priority P1 (a warehouse stopped, or more than 500 orders late): page the duty manager at once,
  then open a ticket with the tag p1; the target first reply is 15 minutes.
- P2 (one merchant's orders blocked, data wrong on the portal): ticket tagged p2, reply within 2
  working hours.
- P3 (everything else): reply within 1 working day.
Tickets are numbered LST-YYMMDD-NNNN, for example LST-260114-0042.

## 6. Warehouses
"""

TEAM = """\
## 7. Team leads who approve credits
- Priya Raman (LW-01 and LW-02), extension 4417, approves up to 5,000.00.
- Tomasz Wierzbicki (LW-03), extension 4420, approves up to 5,000.00.
- Aoife Gallagher (LW-04), extension 4432, approves up to 5,000.00.
- Above 5,000.00: the operations director, Marcus Oyelaran, by email only.

## 8. Merchant accounts you will hear about most
"""

CLOSING = """\
## 10. How to answer
- Start with the answer, then the reason with the handbook section number, in at most 120 words.
- Amounts in GBP with two decimals; dates as YYYY-MM-DD; times in 24-hour local time.
- When a question needs arithmetic on fees or credits, show the sum in one line.
- If the question names an order, merchant or SKU that is not in this handbook, say you cannot see
  it from here and offer a P3 ticket.
"""

CITIES = ["Daventry", "Warrington", "Bellshill", "Avonmouth"]
SEGMENTS = ["apparel", "homeware", "cosmetics", "bike parts", "books", "pet food", "toys", "audio"]
NAMES = [
    "Hollow Oak Candles",
    "Northpaw Pet Supplies",
    "Quarry Lane Ceramics",
    "Saltmarsh Swimwear",
    "Brightwell Audio",
    "Fernhill Tea Co",
    "Kestrel Cycle Works",
    "Ludlow Leather Goods",
    "Marram Skincare",
    "Orchard & Vine Books",
    "Pebblestone Toys",
    "Redcliffe Running",
    "Silverbirch Baby",
    "Tidewater Outdoor",
    "Umber Coffee Roasters",
    "Wrenfield Stationery",
    "Yarrow Herbals",
    "Ashgrove Home",
    "Blackthorn Knitwear",
    "Cobalt Phone Cases",
]
ITEMS = [
    "merino crew jumper",
    "ceramic pour-over set",
    "LED bike light pair",
    "bamboo bath towel",
    "refill pack 500 ml",
    "hardback notebook A5",
    "wireless earbuds",
    "dog harness medium",
    "soy candle 220 g",
    "trail running sock",
    "wooden puzzle 48 pc",
    "leather card wallet",
]
COMPLAINTS = [
    "mis-pick reported",
    "address change asked",
    "damage photos sent",
    "late dispatch claimed",
    "return graded B",
    "intercept requested",
]


def handbook() -> str:
    """The shared handbook: realistic support text, with numbers, dates and ids (~5,000 tokens)."""
    rng = random.Random(20260201)
    lines = [POLICIES]
    for n, city in enumerate(CITIES, start=1):
        lines.append(
            f"- LW-{n:02d} {city}: {rng.randint(18, 61) * 1000:,} sq ft, "
            f"{rng.randint(9, 24)} aisles, "
            f"open 06:00-22:00, carriers {rng.choice(['DPD', 'Evri', 'Royal Mail'])} and "
            f"{rng.choice(['DHL', 'UPS', 'Parcelforce'])}, site lead extension 44{n:02d}."
        )
    lines.append("\n" + TEAM)
    for n, name in enumerate(NAMES):
        joined = f"20{rng.randint(19, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        lines.append(
            f"- LM-{30417 + 37 * n}: {name} ({rng.choice(SEGMENTS)}), since {joined}, warehouse "
            f"LW-{rng.randint(1, 4):02d}, about {rng.randint(40, 2400):,} orders a week, tariff "
            f"T-2026-{rng.choice('ABC')}, account manager ext. {rng.randint(4500, 4599)}; open "
            f"credit balance {rng.randint(0, 90000) / 100:,.2f}."
        )
    lines.append("\n## 9. Recent orders with open tickets\n")
    for _ in range(60):
        day = f"26{rng.randint(1, 2):02d}{rng.randint(1, 28):02d}"
        order = f"LFO-{day}-{rng.randint(1000, 99999):05d}"
        ticket = f"LST-26{rng.randint(1, 2):02d}{rng.randint(1, 28):02d}-{rng.randint(1, 9999):04d}"
        status = rng.choice(["PACKED", "DISPATCHED", "HELD", "RETURNED"])
        lines.append(
            f"- {order} for LM-{30417 + 37 * rng.randrange(len(NAMES))}: {rng.randint(1, 6)} x "
            f"{rng.choice(ITEMS)}, status {status}, ticket {ticket} "
            f"({rng.choice(['p2', 'p3', 'p3'])}): {rng.choice(COMPLAINTS)}, "
            f"value {rng.randint(900, 48000) / 100:,.2f}."
        )
    lines.append("\n" + CLOSING)
    return "\n".join(lines)


def system_prompt(kind: str) -> str:
    return f"[workflow: {kind}] You are the Larkspur support assistant.\n\n{handbook()}"


def webhook(kind: str) -> dict[str, Any]:
    return {
        "id": f"cw-{kind}-webhook",
        "name": "Webhook",
        "type": "n8n-nodes-base.webhook",
        "typeVersion": 2.1,
        "position": [0, 0],
        "webhookId": f"00000000-0000-4000-8000-{KINDS.index(kind) + 1:012d}",
        "parameters": {
            "httpMethod": "POST",
            "path": f"cachewise-{kind}",
            "responseMode": "lastNode",
            "options": {},
        },
    }


def chat_model(kind: str) -> dict[str, Any]:
    return {
        "id": f"cw-{kind}-model",
        "name": "Anthropic Chat Model",
        "type": "@n8n/n8n-nodes-langchain.lmChatAnthropic",
        "typeVersion": 1.6,
        "position": [220, 220],
        "parameters": {
            "model": {"__rl": True, "mode": "id", "value": MODEL},
            "options": {"maxTokensToSample": MAX_TOKENS, "promptCaching": "5m"},
        },
        "credentials": {"anthropicApi": CREDENTIAL},
    }


QUESTION = "={{ $json.body.question }}"


def main_node(kind: str) -> dict[str, Any]:
    system = system_prompt(kind)
    node: dict[str, Any] = {"id": f"cw-{kind}-main", "position": [220, 0]}
    if kind == "http":
        body = {
            "model": MODEL,
            "max_tokens": MAX_TOKENS,
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "QUESTION"}],
        }
        # n8n fills {{ }} in a JSON body written as text: the question goes in JSON-encoded.
        json_body = "=" + json.dumps(body).replace(
            '"QUESTION"', "{{ JSON.stringify($json.body.question) }}"
        )
        node |= {
            "name": "Claude Messages API",
            "type": "n8n-nodes-base.httpRequest",
            "typeVersion": 4.2,
            "parameters": {
                "method": "POST",
                "url": f"{BASE_URL}/v1/messages",
                "authentication": "predefinedCredentialType",
                "nodeCredentialType": "anthropicApi",
                "sendHeaders": True,
                "headerParameters": {
                    "parameters": [{"name": "anthropic-version", "value": "2023-06-01"}]
                },
                "sendBody": True,
                "specifyBody": "json",
                "jsonBody": json_body,
                "options": {},
            },
            "credentials": {"anthropicApi": CREDENTIAL},
        }
    elif kind == "chain":
        node |= {
            "name": "Basic LLM Chain",
            "type": "@n8n/n8n-nodes-langchain.chainLlm",
            "typeVersion": 1.9,
            "parameters": {
                "promptType": "define",
                "text": QUESTION,
                "messages": {"messageValues": [{"message": system}]},
                "batching": {},
            },
        }
    elif kind == "agent":
        node |= {
            "name": "AI Agent",
            "type": "@n8n/n8n-nodes-langchain.agent",
            "typeVersion": 3.1,
            "parameters": {
                "promptType": "define",
                "text": QUESTION,
                "options": {"systemMessage": system},
            },
        }
    else:
        node |= {
            "name": "Message a model",
            "type": "@n8n/n8n-nodes-langchain.anthropic",
            "typeVersion": 1,
            "parameters": {
                "resource": "text",
                "operation": "message",
                "modelId": {"__rl": True, "mode": "id", "value": MODEL},
                "messages": {"values": [{"content": QUESTION, "role": "user"}]},
                "options": {"system": system, "maxTokens": MAX_TOKENS},
            },
            "credentials": {"anthropicApi": CREDENTIAL},
        }
    return node


def workflow(kind: str) -> dict[str, Any]:
    main = main_node(kind)
    nodes = [webhook(kind), main]
    connections: dict[str, Any] = {
        "Webhook": {"main": [[{"node": main["name"], "type": "main", "index": 0}]]}
    }
    if kind in ("chain", "agent"):
        nodes.append(chat_model(kind))
        connections["Anthropic Chat Model"] = {
            "ai_languageModel": [[{"node": main["name"], "type": "ai_languageModel", "index": 0}]]
        }
    if kind == "agent":
        nodes.append(
            {
                "id": "cw-agent-calculator",
                "name": "Calculator",
                "type": "@n8n/n8n-nodes-langchain.toolCalculator",
                "typeVersion": 1,
                "position": [440, 220],
                "parameters": {},
            }
        )
        connections["Calculator"] = {
            "ai_tool": [[{"node": main["name"], "type": "ai_tool", "index": 0}]]
        }
    return {
        "id": f"cachewise{kind.capitalize():0<7}",  # n8n ids are 16 characters
        "name": f"cachewise {kind}",
        "active": False,
        "nodes": nodes,
        "connections": connections,
        "settings": {"executionOrder": "v1"},
        "pinData": {},
    }


def credential(base_url: str = BASE_URL, api_key: str = "sk-ant-dummy-key-for-the-proxy") -> dict:
    return {
        **CREDENTIAL,
        "type": "anthropicApi",
        "data": {"apiKey": api_key, "url": base_url, "header": False},
    }


def write(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"credential.json": [credential()]}
    files |= {f"workflow-{kind}.json": workflow(kind) for kind in KINDS}
    paths = []
    for name, data in files.items():
        path = out / name
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(path)
