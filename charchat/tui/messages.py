"""Messages between the app and its screens. A screen never calls another screen: it posts
one of these to the app, which acts on it and passes it to the screens it concerns."""

from __future__ import annotations

from textual.message import Message

# Each is sent to one screen or to the app (bubble=False): a screen's copy must not bubble up
# to the app, which would pass it on again.


class OpenModel(Message, bubble=False):
    """Go back to the chat screen and chat with this model."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class ModelRemoved(Message, bubble=False):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class ModelRenamed(Message, bubble=False):
    def __init__(self, old: str, new: str) -> None:
        super().__init__()
        self.old, self.new = old, new


class JobProgress(Message, bubble=False):
    """New progress of the training job (from its worker thread)."""

    def __init__(self, job, batch) -> None:
        super().__init__()
        self.job, self.batch = job, batch


class JobEnded(Message, bubble=False):
    """The training job has ended: job.result or job.error says how."""

    def __init__(self, job) -> None:
        super().__init__()
        self.job = job


class JobChanged(Message, bubble=False):
    """The training job went out of sight, came back, or ended (the chat's status line
    mentions a run that goes on out of sight)."""


class ConversationDeleted(Message, bubble=False):
    def __init__(self, conv_id: str) -> None:
        super().__init__()
        self.conv_id = conv_id
