"""microcred-sync: rosters in from HRIS, CRM and directories; results out."""

__version__ = "0.1.0"
