//! The webhook executor (in progress).
