"""items deleted with their job by a trigger, not checked row by row

Revision ID: 0015_items_without_job_key
Revises: 0014_results_without_batch_key
Create Date: 2026-12-01

``items.job_id`` referenced ``jobs`` with a foreign key (ON DELETE CASCADE). PostgreSQL checks
such a key for every row a ``COPY`` inserts (an after-row trigger: one lookup and row lock of
the job each): measured on a 50,000-item ``COPY`` into the items table, 8-13 us of the 23-29 us
a row costs the server, the largest cost job creation adds to the raw write of the same lines
(issue 13, benchmarks/README). Every item a job creation writes names the job it has just
inserted in the same transaction (``db.item_ingest.ItemWriter`` is given the job and writes
no other; a retry's ``INSERT ... SELECT`` names the new job it inserted first), so checking it
once per row says nothing new:

- *insert*: the job row comes first, in the same transaction; llmbatch deletes no job.
- *delete*: a trigger on ``jobs`` deletes the job's items before the job row goes (an
  operator deleting a job), as the cascade did; *before*, so that the cascade that deletes the
  job's batches finds no item still naming one of them.

SQLite loses the key too (its table is rebuilt; the partial batch index of ``0012`` keeps its
predicate), so both databases keep the same schema and rules.

SQLite checks a trigger's body against the tables it names when one of them is rebuilt: a
later migration that rebuilds ``items`` there (``batch_alter_table``) fails on
``trg_jobs_delete_items`` unless it drops the trigger first and creates it again after, as
this one's downgrade does.
"""

from __future__ import annotations

from alembic import op

revision = "0015_items_without_job_key"
down_revision = "0014_results_without_batch_key"
branch_labels = None
depends_on = None

_KEY = "fk_items_job_id_jobs"
_TRIGGER = "trg_jobs_delete_items"
_FUNCTION = "llmbatch_delete_job_items"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.drop_constraint(_KEY, "items", type_="foreignkey")
        op.execute(f"""
            CREATE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              DELETE FROM items WHERE job_id = OLD.id;
              RETURN OLD;
            END $$""")
        op.execute(f"CREATE TRIGGER {_TRIGGER} BEFORE DELETE ON jobs "
                   f"FOR EACH ROW EXECUTE FUNCTION {_FUNCTION}()")
        return
    with op.batch_alter_table("items") as batch:
        batch.drop_constraint(_KEY, type_="foreignkey")
    op.execute(f"""
        CREATE TRIGGER {_TRIGGER} BEFORE DELETE ON jobs FOR EACH ROW
        BEGIN
          DELETE FROM items WHERE job_id = OLD.id;
        END""")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(f"DROP TRIGGER {_TRIGGER}" + (" ON jobs" if postgres else ""))
    if postgres:
        op.execute(f"DROP FUNCTION {_FUNCTION}()")
        op.create_foreign_key(_KEY, "items", "jobs", ["job_id"], ["id"], ondelete="CASCADE")
        return
    with op.batch_alter_table("items") as batch:
        batch.create_foreign_key(_KEY, "jobs", ["job_id"], ["id"], ondelete="CASCADE")
