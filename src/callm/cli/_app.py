"""The ``callm`` command: the prompt as the default command, plus its subcommands."""

from __future__ import annotations

from ._batch import batch_group
from ._chat import chat_command
from ._compare import compare_command
from ._conversations import conversations_command
from ._embed import embed_command
from ._group import DefaultGroup
from ._keys import keys_group
from ._logs import logs_group
from ._models import models_command
from ._prompt import prompt_command
from ._serve import serve_command
from ._usage import usage_command

cli = DefaultGroup(
    "callm",
    help='Call any LLM API from the shell: `callm "prompt"` streams the answer.\n\n'
    "The first argument runs a command when it names one, and is the prompt otherwise "
    '(`callm -- models` sends the word "models").\n\n'
    "\b\nExamples:\n"
    '  callm "Explain an API call in one sentence."\n'
    '  callm -m anthropic/claude-haiku-4-5 -u "hi"      (then tokens, cost, timing)\n'
    '  callm compare -m openai/gpt-4o-mini -m gemini/gemini-2.5-flash "Name a prime"\n'
    "  callm batch questions.jsonl -o answers.jsonl -m openai/gpt-4o-mini\n"
    "  callm embed -m openai/text-embedding-3-small -i docs.txt > vectors.jsonl\n"
    '  callm logs -q "invoice*" --since 7d\n'
    "  callm COMMAND --help                             (each command's own examples)",
    default_command=prompt_command.name or "prompt",
    context_settings={"help_option_names": ["-h", "--help"]},
)
for command in (
    prompt_command,
    chat_command,
    compare_command,
    conversations_command,
    models_command,
    keys_group,
    logs_group,
    usage_command,
    serve_command,
    batch_group,
    embed_command,
):
    cli.add_command(command)

__all__ = ["cli"]
