"""The quote form: a Slack modal opened by a card's Quote button (`views.open`).

Its submission comes back as `view_submission` with the conversation in
`private_metadata`, and `inbound.from_view_submission` turns it into the same `quote`
command a rep could type, so the domain decides it exactly as `/quote`.
"""

from __future__ import annotations

from typing import Any

from adapters.slack.inbound import QUOTE_VIEW_CALLBACK_ID


def _input(
    block_id: str, label: str, placeholder: str, *, optional: bool = False
) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "element": {
            "type": "plain_text_input",
            "action_id": "value",
            "placeholder": {"type": "plain_text", "text": placeholder},
        },
    }


def quote_modal(conversation: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": QUOTE_VIEW_CALLBACK_ID,
        "private_metadata": conversation,
        "title": {"type": "plain_text", "text": "New quote"},
        "submit": {"type": "plain_text", "text": "Post quote"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _input("qty", "Quantity", "10"),
            _input("sku", "Product (SKU)", "PRO"),
            _input("discount", "Discount %", "10", optional=True),
            _input("tax", "Tax %", "0", optional=True),
        ],
    }
