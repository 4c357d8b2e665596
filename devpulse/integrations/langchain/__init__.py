"""LangChain integration: a callback handler that guards and books any chat model, and a
chat model that routes every call through DevPulse.

    from devpulse.integrations.langchain import DevPulseCallbackHandler

    model = ChatAnthropic(model="claude-sonnet-4-5", callbacks=[DevPulseCallbackHandler()])

Importing this package imports ``langchain-core``; nothing else in DevPulse does.
"""

from __future__ import annotations

from devpulse.integrations.langchain.chat_model import AnswerRestarted, DevPulseChatModel
from devpulse.integrations.langchain.guard import DevPulseCallbackHandler
from devpulse.integrations.langchain.sides import model_side

__all__ = ["AnswerRestarted", "DevPulseCallbackHandler", "DevPulseChatModel", "model_side"]
