"""The SDK web-service modules import on this machine's OpenSSL, and no more than needed."""

import subprocess
import sys


def run_fresh(code: str) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter: the import has to work from nothing, not from a warm sys.modules.
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_skill_adapter_imports_after_the_fix():
    result = run_fresh(
        "import verification\n"
        "from flask_ask_sdk.skill_adapter import SkillAdapter\n"
        "from ask_sdk_webservice_support.verifier import AbstractVerifier, VerificationException\n"
        "from ask_sdk_webservice_support.webservice_handler import WebserviceSkillHandler\n"
        "print(SkillAdapter.__name__, WebserviceSkillHandler.__name__)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SkillAdapter", "WebserviceSkillHandler"]


def test_stand_in_refuses_to_validate_when_installed():
    result = run_fresh(
        "from verification import sdkcompat\n"
        "import certvalidator\n"
        "if sdkcompat.import_error is None:\n"
        "    print('real')\n"
        "else:\n"
        "    try:\n"
        "        certvalidator.CertificateValidator(b'')\n"
        "    except RuntimeError as exc:\n"
        "        print('refused', 'sdkcompat' in str(exc))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in {"real", "refused True"}


def test_skill_package_installs_the_fix_itself():
    result = run_fresh("import skill\nfrom flask_ask_sdk.skill_adapter import SkillAdapter\n")
    assert result.returncode == 0, result.stderr


def test_an_openssl_oscrypto_cannot_read_costs_no_oscrypto_import():
    # oscrypto's own test of the version (1.3.0): where it fails, importing it only
    # spends start-up time and memory on modules that then fail.
    result = run_fresh(
        "import re, ssl, sys\n"
        "import verification\n"
        "from verification import sdkcompat\n"
        "readable = re.search(r'\\b(\\d\\.\\d\\.\\d[a-z]*)\\b', ssl.OPENSSL_VERSION)\n"
        "tops = {n.split('.')[0] for n in sys.modules}\n"
        "loaded = sorted(tops & {'oscrypto', 'cffi', 'pycparser'})\n"
        "print(bool(readable), sdkcompat.import_error is not None, loaded)\n"
    )
    assert result.returncode == 0, result.stderr
    readable, stand_in, loaded = result.stdout.strip().split(" ", 2)
    if readable == "False":
        assert (stand_in, loaded) == ("True", "[]")


def test_the_server_imports_no_terminal_library():
    # rich is for the command-line tools; each server process would carry it for nothing.
    result = run_fresh(
        "import sys, skill.app, funker_dispatch.server.serve\nprint('rich' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_a_skill_without_event_triggers_imports_none_of_them(tmp_path):
    # The triggers package, its verifiers and the event view cost start-up time and
    # memory in every process; a skill with no [triggers] table has no use for them.
    config = tmp_path / "dispatch.toml"
    config.write_text('[intents.HelloIntent]\nhost = "127.0.0.1"\nport = 9\n', encoding="utf-8")
    result = run_fresh(
        "import sys\n"
        "from skill.app import create_app\n"
        "from skill.settings import load_settings\n"
        f"app = create_app(load_settings({str(config)!r}, environ={{}}))\n"
        "print(sorted(m for m in sys.modules if m == 'skill.events' or m.startswith('triggers')))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
