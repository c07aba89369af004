"""Tool-calling preference rows and a tiny chat template with tool support (for the compatibility suite)."""

from __future__ import annotations

import json

from tests.tiny import make_tokenizer

# Renders the tools' names, assistant tool calls (name and arguments as JSON) and tool results; ``shout`` (a
# chat_template_kwargs entry) marks every message, so that passing it shows in the ids.
TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|> system \n {{ tools | map(attribute='function.name') | join(' ') }} <|im_end|> \n "
    "{% endif %}"
    "{% for m in messages %}<|im_start|> {{ m['role'] }} \n {{ '! ' if shout else '' }}"
    "{{ (m['content'] + ' ') if m['content'] else '' }}"
    "{% for c in (m['tool_calls'] or []) %}{{ c['function']['name'] + ' ' + (c['function']['arguments'] | tojson) }} "
    "{% endfor %}<|im_end|> \n {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant \n {{ '! ' if shout else '' }}{% endif %}"
)
TOOLS = [{"type": "function", "function": {"name": "weather", "description": "the weather today", "parameters": {}}}]


def tool_tokenizer():
    tokenizer = make_tokenizer()
    tokenizer.chat_template = TOOL_TEMPLATE
    return tokenizer


def tool_rows(n: int, tools_as_json: bool = True) -> list[dict]:
    """Pairs whose chosen response calls the tool, reads its result and answers; the rejected one answers alone."""
    rows = []
    for i in range(n):
        city = ["cats", "dogs"][i % 2]
        call = {"type": "function", "function": {"name": "weather", "arguments": json.dumps({"where": city})}}
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"what is the weather today {city} ?"}],
                "chosen": [
                    {"role": "assistant", "content": "", "tool_calls": [call]},
                    {"role": "tool", "content": ["good", "bad"][i % 2]},
                    {"role": "assistant", "content": f"the weather is {['good', 'bad'][i % 2]} ."},
                ],
                "rejected": [{"role": "assistant", "content": "sorry I can not help ."}],
                "tools": json.dumps(TOOLS) if tools_as_json else TOOLS,
            }
        )
    return rows
