"""Database adapter: SQLAlchemy Core tables, repositories, unit of work, Alembic migrations."""
