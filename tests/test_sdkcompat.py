"""The official SDK web-service modules import on this machine's OpenSSL."""

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
