"""Statements: what the results flow sends back to a partner.

- ``scorm``: SCORM 1.2 and 2004 run-time data to an xAPI verb and ``result``.
- ``xapi``: result, award and voiding statements (ids derived from the fact).
- ``badges``: an award as an Open Badges 3.0 credential, optionally a VC-JWT.

All of it is pure: inputs are plain dataclasses, outputs JSON-ready dicts or text,
and errors (``errors``) name the field at fault without personal data.
"""
