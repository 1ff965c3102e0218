"""The results tests check what they deliver with Learning Locker's validator, as
the statement tests do (see tests/statements/conftest.py)."""

from tests.statements.conftest import validated, xapi_validator

__all__ = ["validated", "xapi_validator"]
