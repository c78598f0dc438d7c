"""The exceptions a user or a delivery can cause: the CLI prints a MedgovError as one line;
a batch's exceptions are recorded against the batch, and the run goes on."""


class MedgovError(Exception):
    """A problem the user can fix (bad path, missing key, unreadable manifest...)."""


class BatchRejected(Exception):
    """The batch breaks the interface; nothing of it is published. The message is the reason."""


class BatchDeferred(Exception):
    """The batch could not be read within its budget (slow or stuck storage): nothing of it is
    published this time, and it is tried again at the next trigger. The message is the reason."""
