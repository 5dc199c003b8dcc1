"""Alexa request verification as ASK SDK verifiers; the SDK import fix; the dev CA."""

from verification import sdkcompat

sdkcompat.install()
