"""Token counts: a job's input at admission (the token rate, aijobs/limits.py), and the usage of a model call that
was stopped before the provider reported it (a cancelled job).

A provider reports usage at the end of a stream; a call closed earlier is still billed for what it read and made,
so the worker counts it with a tokenizer that ships its encodings (``bpe-openai``, tiktoken-compatible: tiktoken
itself downloads them at run time, which a Lambda without internet cannot). Counts follow the model's encoding
when the tokenizer knows the model, else o200k_base; they are estimates, and the job's usage says so.

At admission, a model named as OpenAI names its models (``gpt-``, ``o1``..., ``chatgpt-``, fine-tunes of these) is
counted with the tokenizer; any other model's input is estimated at ``CHARS_PER_TOKEN`` characters a token (about
what BPE tokenizers give for English; other models' tokenizers are not shipped), without loading the tokenizer.
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import TYPE_CHECKING

from aijobs.models.jobs import JobRequest, Usage
from aijobs.providers import to_messages

if TYPE_CHECKING:
    from bpe_openai import Encoding

DEFAULT_ENCODING = "o200k_base"
# Chat formatting adds a few tokens per message (role, separators) and a few to prime the answer, as OpenAI counts.
TOKENS_PER_MESSAGE = 3
TOKENS_TO_PRIME = 3
OPENAI_MODEL = re.compile(r"^(ft:)?(gpt-|chatgpt-|o\d)")
CHARS_PER_TOKEN = 4


@cache
def _encoding(model: str) -> Encoding:
    import bpe_openai  # loaded on the first stopped call only: it is large, and most processes never need it

    try:
        return bpe_openai.encoding_for_model(model)
    except (KeyError, ValueError):  # UnsupportedModelError: a model the tokenizer does not know (or its encoding)
        return bpe_openai.get_encoding(DEFAULT_ENCODING)


def count_tokens(model: str, text: str) -> int:
    return len(_encoding(model).encode_ordinary(text)) if text else 0


def stopped_call_usage(request: JobRequest, *, model: str, output_text: str) -> Usage:
    """The usage of a call stopped after it made ``output_text``: the prompt as sent, and the output so far."""
    messages = to_messages(request)
    input_tokens = TOKENS_TO_PRIME + sum(TOKENS_PER_MESSAGE + count_tokens(model, m["content"]) for m in messages)
    output_tokens = count_tokens(model, output_text)
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens,
                 estimated=True)


def input_tokens(request: JobRequest, *, model: str) -> int:
    """The prompt's tokens as sent (messages and their formatting): counted for OpenAI's models, else estimated."""
    messages = to_messages(request)
    if OPENAI_MODEL.match(model):
        return TOKENS_TO_PRIME + sum(TOKENS_PER_MESSAGE + count_tokens(model, m["content"]) for m in messages)
    return TOKENS_TO_PRIME + sum(TOKENS_PER_MESSAGE + math.ceil(len(m["content"]) / CHARS_PER_TOKEN)
                                 for m in messages)
