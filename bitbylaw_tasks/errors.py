"""The exception every domain raises for a sync failure that needs a human."""


class SyncFailed(Exception):
    """A failure a human must look at; already recorded on the EspoCRM record when `recorded`."""

    def __init__(self, message: str, *, recorded: bool = False):
        super().__init__(message)
        self.recorded = recorded
