"""The ASK SDK skill and its web and command-line faces."""

from verification import sdkcompat

sdkcompat.install()  # before any ASK SDK web-service import (see verification/sdkcompat.py)
