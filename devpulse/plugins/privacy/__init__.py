"""The bundled privacy classifier: secrets, personal data and internal references stay local."""

from devpulse.plugins.privacy.plugin import PrivacyClassifier
from devpulse.plugins.privacy.scanner import Scanner

__all__ = ["PrivacyClassifier", "Scanner"]
