//! The SMTP email executor (in progress).
