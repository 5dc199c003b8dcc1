"""Keep the ASK SDK's web-service modules importable on any OpenSSL.

`flask_ask_sdk.skill_adapter`, `ask_sdk_webservice_support.verifier` and
`.webservice_handler` import `certvalidator`, which imports `oscrypto`.
oscrypto 1.3.0 (the last release) finds libcrypto's version with the regex
`\\d\\.\\d\\.\\d`, so it raises `LibraryNotFoundError("Error detecting the
version of libcrypto")` whenever a component has two digits (OpenSSL
3.0.10 and later, e.g. Debian's 3.0.19). The SDK then cannot be imported at
all, although only its own `RequestVerifier` ever touches certvalidator.

Our verifiers (`verification.SignatureVerifier` & co.) use `cryptography`
only, so when - and only when - the real certvalidator cannot be imported,
`install()` registers a stand-in module under that name. Its
`CertificateValidator` raises at construction, naming this module, so
nothing can silently validate with it. Where certvalidator imports fine the
real one is left untouched.

`install()` must run before any SDK import: `verification/__init__.py` and
`skill/__init__.py` call it first thing.
"""

from __future__ import annotations

import re
import ssl
import sys
import types

#: Why the stand-in is installed; `None` while the real certvalidator works.
import_error: str | None = None


class _UnavailableCertificateValidator:
    """Stand-in for `certvalidator.CertificateValidator` that refuses to work."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "certvalidator is unavailable here "
            f"({import_error}); ask_sdk_webservice_support.verifier.RequestVerifier "
            "cannot run. Use verification.SignatureVerifier instead "
            "(see verification/sdkcompat.py)."
        )


def _stand_in() -> tuple[types.ModuleType, types.ModuleType]:
    errors = types.ModuleType("certvalidator.errors")

    class ValidationError(Exception):
        pass

    class PathError(Exception):
        pass

    class PathBuildingError(PathError):
        pass

    for cls in (ValidationError, PathError, PathBuildingError):
        cls.__module__ = errors.__name__
        setattr(errors, cls.__name__, cls)

    package = types.ModuleType("certvalidator")
    package.__doc__ = "Stand-in installed by verification.sdkcompat: " + str(import_error)
    package.__path__ = []  # a package, so `certvalidator.errors` resolves
    package.CertificateValidator = _UnavailableCertificateValidator
    package.ValidationContext = _UnavailableCertificateValidator
    package.errors = errors
    return package, errors


def _oscrypto_reads(version: str) -> bool:
    """Whether oscrypto 1.3.0's own patterns find a version in this OpenSSL's banner.

    oscrypto asks the system libcrypto, which is the one Python's ssl links
    against wherever the SDK is deployed (Debian, the python images). Were they
    to differ, the cost of a wrong "no" is the SDK's RequestVerifier, which
    funker-dispatch never uses; a wrong "yes" only tries the import as before.
    """
    return bool(
        re.search(r"\b(\d\.\d\.\d[a-z]*)\b", version)
        or re.search(r"(?<=LibreSSL )(\d\.\d(\.\d)?)\b", version)
    )


def install() -> None:
    """Make `import certvalidator` succeed, with the real module if it loads."""
    global import_error
    if "certvalidator" in sys.modules:
        return
    try:
        if "oscrypto" not in sys.modules and not _oscrypto_reads(ssl.OPENSSL_VERSION):
            # Known to fail: trying costs every process about 150 ms and the memory
            # of oscrypto, cffi and pycparser, all left behind half-loaded.
            raise ImportError(f"oscrypto cannot read the version of {ssl.OPENSSL_VERSION}")
        import certvalidator  # noqa: F401
    except Exception as exc:  # oscrypto raises its own LibraryNotFoundError
        import_error = f"{type(exc).__name__}: {exc}"
        # A failed import can leave half-initialised submodules behind.
        stale = [n for n in sys.modules if n.split(".")[0] == "certvalidator"]
        for name in stale:
            del sys.modules[name]
        package, errors = _stand_in()
        sys.modules["certvalidator"] = package
        sys.modules["certvalidator.errors"] = errors
