"""results deleted with their batch by a trigger, not checked row by row

Revision ID: 0014_results_without_batch_key
Revises: 0013_item_results
Create Date: 2026-12-01

``item_results.batch_id`` referenced ``provider_batches`` with a foreign key (ON DELETE
CASCADE). PostgreSQL checks such a key for every row a ``COPY`` inserts, one lookup and row
lock of the batch each: measured, 0.15-0.2 s of a 50,000-result fetch (server CPU 0.92-1.0 s
with it, 0.78 s without; benchmarks/README), the largest cost the fetch adds to the raw write
of the same results (issue 13). Every result of a chunk names the same batch, so checking it
once per chunk says the same thing:

- *insert*: the fetch writes a chunk's results and updates its batch row's totals in one
  transaction (``db.result_totals.write_totals``), and fails the chunk when that update finds
  no batch. A batch deleted before the chunk commits is seen there (or waits for the chunk's
  row lock, and then takes the chunk's results with it, below).
- *delete*: a trigger on ``provider_batches`` deletes the batch's results, as the cascade did
  (llmbatch itself deletes no batch; an operator deleting a job deletes its batches, through
  their own cascade, and so their results).

SQLite checked the key in the process for a few microseconds a chunk; it loses it too, so both
databases keep the same schema and the same rules (its table is rebuilt to drop the key).

SQLite drops a table's triggers with the table: a later migration that rebuilds
``provider_batches`` there (``batch_alter_table``) must create the trigger again
(``tests/unit/test_migrations.py`` deletes a job at head and checks its results went).
"""

from __future__ import annotations

from alembic import op

revision = "0014_results_without_batch_key"
down_revision = "0013_item_results"
branch_labels = None
depends_on = None

_KEY = "fk_item_results_batch_id_provider_batches"
_TRIGGER = "trg_provider_batches_delete_results"
_FUNCTION = "llmbatch_delete_batch_results"


def upgrade() -> None:
    with op.batch_alter_table("item_results") as batch:
        batch.drop_constraint(_KEY, type_="foreignkey")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              DELETE FROM item_results WHERE batch_id = OLD.id;
              RETURN OLD;
            END $$""")
        op.execute(f"CREATE TRIGGER {_TRIGGER} AFTER DELETE ON provider_batches "
                   f"FOR EACH ROW EXECUTE FUNCTION {_FUNCTION}()")
    else:
        op.execute(f"""
            CREATE TRIGGER {_TRIGGER} AFTER DELETE ON provider_batches FOR EACH ROW
            BEGIN
              DELETE FROM item_results WHERE batch_id = OLD.id;
            END""")


def downgrade() -> None:
    op.execute(f"DROP TRIGGER {_TRIGGER}" + (
        " ON provider_batches" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {_FUNCTION}()")
    with op.batch_alter_table("item_results") as batch:
        batch.create_foreign_key(_KEY, "provider_batches", ["batch_id"], ["id"],
                                 ondelete="CASCADE")
