"""Real models' names keep their reasoning rules on the local server, so a client meets the refusals the cloud
sends with the same bodies (docs/CLOUD.md). Any other name (`cellbox-local` among them) takes every effort.

- gpt-5 (and its -mini, -nano and dated names) refuses hosted tools at `minimal` effort, naming `tools` as the
  parameter: "The following tools cannot be used with reasoning.effort 'minimal': code_interpreter.";
- `minimal` came with gpt-5 and went with gpt-5.1: later gpt-5.x models refuse it as an unsupported value.
"""

from __future__ import annotations

import re

from .. import errors

_GPT5 = re.compile(r"gpt-5(?:-mini|-nano)?(?:-\d{4}-\d{2}-\d{2})?")
_LATER_GPT5 = re.compile(r"gpt-5\.\d+(?:[-.].*)?")
_HOSTED = ("code_interpreter", "file_search", "web_search", "web_search_preview", "image_generation", "shell")


def check_reasoning(model: str, reasoning: object, tools: object) -> None:
    """Raises the 400 the named model answers for this `reasoning` effort with these `tools`, if it refuses."""
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if effort != "minimal":
        return
    if _GPT5.fullmatch(model):
        hosted = (
            [t["type"] for t in tools if isinstance(t, dict) and t.get("type") in _HOSTED]
            if isinstance(tools, list)
            else []
        )
        if hosted:
            raise errors.invalid(
                f"The following tools cannot be used with reasoning.effort 'minimal': {', '.join(hosted)}.", "tools"
            )
    elif _LATER_GPT5.fullmatch(model):
        raise errors.invalid(
            "Unsupported value: 'reasoning.effort' does not support 'minimal' with this model. Supported values "
            "are: 'none', 'low', 'medium', and 'high'.",
            "reasoning.effort",
            "unsupported_value",
        )
