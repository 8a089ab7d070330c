"""A tour of the library against the built-in offline model (no key, no network needed)."""

from dataclasses import dataclass

import callm

MODEL = "local/offline"

with callm.Client() as client:
    # One call, the whole reply.
    r = client.complete(MODEL, "What does a retry with backoff do?", max_tokens=40)
    print(f"complete: {r.text!r}")
    print(
        f"  finish={r.finish_reason} tokens in/out={r.usage.input_tokens}/{r.usage.output_tokens}"
    )

    # Streaming: events as they arrive, then the same Response complete() would give.
    with client.stream(MODEL, "Stream me a short sentence.") as stream:
        print("stream:   ", end="")
        for event in stream:
            if event.type == "text":
                print(event.text, end="", flush=True)
        done = stream.response
        print(f"\n  ttft={done.ttft_s:.4f}s total tokens={done.usage.total_tokens}")

    # Tool calling: the model asks for a tool, we answer, it replies with the result.
    weather = callm.Tool(
        "get_weather",
        "Current weather of a city",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    messages: list[callm.Message] = [callm.Message.user("Use get_weather for Paris")]
    r = client.complete(MODEL, messages, tools=[weather])
    call = r.tool_calls[0]
    print(f"tool call: {call.name}({dict(call.arguments)})")
    messages += [r.to_message(), callm.Message.tool(call.id, "18°C and sunny")]
    print(f"after tool: {client.complete(MODEL, messages, tools=[weather]).text!r}")

    # Tools from plain functions: run() executes the calls and loops until the model answers.
    def get_forecast(city: str, days: int = 1) -> str:
        """The weather forecast of a city.

        Args:
            city: The city name, in English.
            days: How many days ahead.
        """
        return f"{days} day(s) of sun in {city}"

    r = client.run(MODEL, "Use get_forecast for Lyon", tools=[get_forecast], max_steps=3)
    print(f"run:       {r.text!r} ({len(r.transcript)} messages in the transcript)")

    # Structured output: the reply validated into a typed value.
    @dataclass
    class City:
        name: str
        population: int

    r = client.complete(MODEL, "Name a city and its population", output=City)
    print(f"parsed:    {r.parsed!r}")

    # A conversation: history kept (and stored in $CALLM_HOME/callm.db), resumable by id.
    conv = client.conversation(MODEL, system="Be brief.")
    conv.send("My name is Ada.")
    r = conv.send("What is my name?")
    print(f"conversation {conv.id}: {len(conv.messages)} messages, last: {r.text[:40]!r}…")
