"""The project's error types: one root, a few specific ones callers act on."""


class DetectorError(Exception):
    """Root of every error this package raises on purpose."""


class SettingsError(DetectorError):
    """A setting is missing, unknown or invalid; the message names the variable."""


class BrokerUnavailableError(DetectorError):
    """The Kafka cluster named in the settings cannot be reached."""


class DeliveryError(DetectorError):
    """The broker did not acknowledge an alert or dead-letter record."""


class RestoreTimeoutError(DetectorError):
    """A partition's state could not be restored within DETECTOR_STATE_RESTORE_TIMEOUT_S."""


class InputFileError(DetectorError, ValueError):
    """An input file (a CSV to replay, train on or evaluate) cannot be used as it is; the
    message names the file, the row where there is one, and the problem."""
