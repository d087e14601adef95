//! errand's PostgreSQL store engine.
