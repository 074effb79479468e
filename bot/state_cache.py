"""A bounded LRU of conversation states, so a busy conversation is not re-folded from the
store on every message. A miss is always safe: the store is the source of truth."""

from __future__ import annotations

from collections import OrderedDict

from domain.state import ConversationState


class StateCache:
    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._states: OrderedDict[str, ConversationState] = OrderedDict()

    def get(self, conversation_id: str) -> ConversationState | None:
        state = self._states.get(conversation_id)
        if state is not None:
            self._states.move_to_end(conversation_id)
        return state

    def put(self, state: ConversationState) -> None:
        self._states[state.conversation_id] = state
        self._states.move_to_end(state.conversation_id)
        while len(self._states) > self._capacity:
            self._states.popitem(last=False)

    def drop(self, conversation_id: str) -> None:
        self._states.pop(conversation_id, None)

    def __len__(self) -> int:
        return len(self._states)
