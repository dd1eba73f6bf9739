"""A local, stateful Notion API (2025-09-03) that behaves like Notion where sync correctness depends on it."""

from .config import DEFAULT_TOKEN, NOTION_VERSION, SandboxConfig
from .control_client import SandboxControl
from .server import RunningSandbox, serve_in_thread
from .ui import ui_url
from .ui_html import UI_PATH

__all__ = [
    "DEFAULT_TOKEN",
    "NOTION_VERSION",
    "RunningSandbox",
    "SandboxConfig",
    "SandboxControl",
    "UI_PATH",
    "serve_in_thread",
    "ui_url",
]
