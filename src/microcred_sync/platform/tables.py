"""The `sql` platform's roster database: partners, programs, learners, enrollments,
results and awards."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

partners = Table(
    "partners",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
)

programs = Table(
    "programs",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("title", String(300), nullable=False),
    Column("activity_iri", String(500), nullable=False),
)

learners = Table(
    "learners",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("partner_id", String(100), ForeignKey("partners.id"), nullable=False),
    Column("external_key", String(255), nullable=False),
    Column("email", String(320)),
    Column("email_norm", String(320)),
    Column("given_name", String(200)),
    Column("family_name", String(200)),
    Column("display_name", String(400)),
    Column("employee_number", String(100)),
    Column("department", String(200)),
    Column("job_title", String(300)),
    Column("manager_key", String(255)),
    Column("location", String(200)),
    Column("hire_date", Date),
    Column("exit_date", Date),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("partner_id", "external_key", name="uq_learners_partner_key"),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("partner_id", String(100), ForeignKey("partners.id"), nullable=False),
    Column("learner_id", String(36), ForeignKey("learners.id"), nullable=False),
    Column("program_id", String(100), ForeignKey("programs.id"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("learner_id", "program_id", name="uq_enrollments_learner_program"),
)

#: What the platform recorded for a learner on an activity (the results flow).
results = Table(
    "results",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("partner_id", String(100), ForeignKey("partners.id"), nullable=False),
    Column("learner_id", String(36), ForeignKey("learners.id"), nullable=False),
    Column("program_id", String(100), ForeignKey("programs.id"), nullable=False),
    Column("activity_iri", String(500), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("completion", Boolean),
    Column("success", Boolean),
    Column("score_raw", Float),
    Column("score_min", Float),
    Column("score_max", Float),
    Column("score_scaled", Float),
    Column("duration", String(40)),
    #: SCORM run-time data (``cmi.*`` names to text), as JSON; the statement
    #: builder translates it.
    Column("scorm", Text),
    #: When the platform stored the result: the results flow reads by it.
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Index("ix_results_partner_imported", "partner_id", "imported_at"),
)

#: Credentials issued to learners; never deleted by deprovisioning.
awards = Table(
    "awards",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("partner_id", String(100), ForeignKey("partners.id"), nullable=False),
    Column("learner_id", String(36), ForeignKey("learners.id"), nullable=False),
    Column("program_id", String(100), ForeignKey("programs.id"), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("learner_id", "program_id", name="uq_awards_learner_program"),
    Index("ix_awards_partner_imported", "partner_id", "imported_at"),
)
