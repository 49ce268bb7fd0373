"""`usage` counts tokens as a real model would bill them (four characters a token): the prompt, instructions and
tool outputs it reads; the code and reply it writes."""

from __future__ import annotations

from localhelp import respond


def test_usage_grows_with_what_the_model_reads(client, container):
    small = respond(client, container.id, "pass")
    assert 0 < small.usage.input_tokens < 10
    assert small.usage.total_tokens == small.usage.input_tokens + small.usage.output_tokens
    loud = respond(client, container.id, "print('x' * 100_000)")
    # The tool output (100 kB of logs) is read back by the model: ~25,000 tokens.
    assert 25_000 <= loud.usage.input_tokens <= 25_100
    assert loud.usage.output_tokens >= 25_000  # the reply repeats the logs
    told = respond(client, container.id, "pass", instructions="Run the code. " * 100)
    assert told.usage.input_tokens - small.usage.input_tokens == 350  # 1,400 characters of instructions


def test_streamed_and_stored_responses_carry_usage(client, container):
    events = list(
        client.responses.create(
            model="cellbox-local",
            input="print(1)",
            tools=[{"type": "code_interpreter", "container": container.id}],
            stream=True,
        )
    )
    done = events[-1].response
    assert done.status == "completed" and done.usage.input_tokens > 0
    assert client.responses.retrieve(done.id).usage == done.usage
