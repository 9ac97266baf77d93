"""Optional tools a test needs (a browser, Node.js packages, another ONNX runtime).

Locally a missing tool skips the test with the reason and the command that installs it.
In CI (the CI environment variable is set, as .ci/run's caller does) .ci/run installs
every such tool, so a missing one fails the test with the same reason: it never skips
silently there."""
import os

import pytest


def require(why_not):
    """Skip (locally) or fail (in CI) with ``why_not`` unless it is None."""
    if why_not is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why_not} (CI installs it in .ci/run: the install failed or was skipped)", pytrace=False)
    pytest.skip(why_not)
